"""iALS: implicit-feedback matrix factorisation by alternating least squares.

Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets" (ICDM 2008),
through the maintained `implicit` library (CPU, conjugate-gradient solver). Rendle et al.
("Revisiting the Performance of iALS on Item Recommendation Benchmarks", RecSys 2022) show
a tuned iALS is a strong baseline; regularisation and alpha are the knobs that matter.

Each ALS sweep is one 'epoch' here, so the sweep count is chosen on validation NDCG@10 like
every other model's epochs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from neurec.interactions import Histories, Interactions
from neurec.models.base import (
    FitReport,
    Recommender,
    Validator,
    check_positive,
    gather_items,
    register,
)
from neurec.training import SELECTION_METRIC, EarlyStopping

logger = logging.getLogger(__name__)


@dataclass
class IALSConfig:
    # factors and regularization: the values iALS was added with, not searched here; with
    # alpha they are the knobs that matter for a tuned iALS (Rendle et al. 2022)
    factors: int = 64
    regularization: float = 0.05  # L2 on the user and item factors
    alpha: float = 2.0  # confidence of an observed interaction: 1 + alpha (Hu et al. 2008)
    epochs: int = 15  # ALS sweeps at most; the best sweep on validation NDCG@10 is kept
    patience: int = 3  # sweeps without a better validation NDCG@10 before stopping
    seed: int = 42  # any fixed seed: the factors' initialisation is reproducible

    def __post_init__(self) -> None:
        check_positive("factors", self.factors)
        check_positive("regularization", self.regularization, allow_zero=True)
        check_positive("alpha", self.alpha, allow_zero=True)
        check_positive("epochs", self.epochs)
        check_positive("patience", self.patience)


@register
class IALS(Recommender):
    name = "ials"
    family = "baselines"
    config_class = IALSConfig

    def __init__(self, config: IALSConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.user_factors = torch.zeros(n_users, config.factors)
        self.item_factors = torch.zeros(n_items, config.factors)

    def fit(self, train: Interactions, validator: Validator | None = None) -> FitReport:
        cfg = self.config
        # implicit scales the matrix by alpha: confidence 1 + alpha on observed pairs
        confidence = train.matrix() * (1.0 + cfg.alpha)
        # implicit checks the BLAS threads when the model is built, and warns unless limited
        with threadpool_limits(1, "blas"):
            als = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                iterations=1,
                random_state=cfg.seed,
            )
        report = FitReport()
        started = time.perf_counter()
        stopper = EarlyStopping(cfg.patience, validated=validator is not None)
        for epoch in range(1, cfg.epochs + 1):
            epoch_start = time.perf_counter()
            with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS must not
                als.fit(confidence, show_progress=False)  # one more sweep from current factors
            self.user_factors = torch.as_tensor(np.array(als.user_factors))
            self.item_factors = torch.as_tensor(np.array(als.item_factors))
            seconds = time.perf_counter() - epoch_start
            metrics = validator(self) if validator is not None else {}
            report.history.append(
                {"epoch": epoch, "seconds": seconds, **{f"val_{k}": v for k, v in metrics.items()}}
            )
            logger.info(
                "ials sweep %d/%d val %s %.4f (%.1fs)",
                epoch,
                cfg.epochs,
                SELECTION_METRIC,
                metrics.get(SELECTION_METRIC, -np.inf),
                seconds,
            )
            # state() holds this sweep's tensors, new each sweep: the best needs no copy
            stopper.update(epoch, metrics, self)
            if stopper.stop:
                break
        self.load_state(stopper.best_state)
        report.epochs, report.best_epoch = epoch, stopper.best_epoch
        report.train_seconds = time.perf_counter() - started
        return report

    def score(
        self, users: np.ndarray, histories: Histories, items: np.ndarray | None = None
    ) -> torch.Tensor:
        full = self.user_factors[torch.as_tensor(users)] @ self.item_factors.T
        return gather_items(full, items)

    def state(self) -> dict[str, torch.Tensor]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.user_factors = state["user_factors"]
        self.item_factors = state["item_factors"]

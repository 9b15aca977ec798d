"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

An item x item weight matrix B with zero diagonal, in closed form:
P = (X^T X + lambda I)^-1, B = I - P / diag(P). A user's scores are their history row
times B, so it reads the history it is given (train + validation at test time).

B is dense: n_items^2 float32, and fitting holds two float64 matrices of that size (the
Gram matrix and its inverse), 20 bytes per item pair: 14.6 GB for MovieLens-20M's 27k
items. A model whose matrices would exceed ``max_memory_gb`` stops when it is built, before
training, saying so; ``max_items`` keeps only the most popular training items in B (every
other item scores -inf: ranked below all kept items), which lifts the limit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from neurec.errors import ConfigError
from neurec.interactions import Histories, Interactions
from neurec.models.base import (
    FitReport,
    Recommender,
    Validator,
    check_positive,
    gather_items,
    one_shot_report,
    register,
)


@dataclass
class EASEConfig:
    l2: float = 500.0  # the paper's lambda; a few hundred suits MovieLens-sized data
    # None: every item. Else the most popular training items kept in B (e.g. 15000 for
    # MovieLens-20M: 4.5 GB); the rest score -inf
    max_items: int | None = None
    # what fitting B may take (Gram matrix and inverse, float64, and B): 8 GB leaves room
    # for the data and the evaluation on a 16-24 GB machine; ML-1M's 3.7k items need 0.3 GB
    max_memory_gb: float = 8.0

    def __post_init__(self) -> None:
        check_positive("l2", self.l2)
        if self.max_items is not None:
            check_positive("max_items", self.max_items)
        check_positive("max_memory_gb", self.max_memory_gb)


BYTES_PER_PAIR = 8 + 8 + 4  # float64 Gram matrix and inverse while fitting, float32 B


def matrix_gb(n_items: int) -> float:
    """Memory EASE needs at its peak for ``n_items`` kept items, in GB."""
    return n_items**2 * BYTES_PER_PAIR / 1e9


@register
class EASE(Recommender):
    name = "ease"
    family = "baselines"
    config_class = EASEConfig
    uses_history = True

    def __init__(self, config: EASEConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        kept = n_items if config.max_items is None else min(n_items, config.max_items)
        if matrix_gb(kept) > config.max_memory_gb:
            fits = int((config.max_memory_gb * 1e9 / BYTES_PER_PAIR) ** 0.5)
            raise ConfigError(
                f"parameter ease.max_items: EASE's item x item matrices for {kept} items "
                f"need {matrix_gb(kept):.1f} GB, more than ease.max_memory_gb="
                f"{config.max_memory_gb:g}; set ease.max_items (at most {fits} fits) to keep "
                "only the most popular items (the others score lowest), or raise "
                "ease.max_memory_gb if the machine has the memory"
            )
        self.kept = torch.arange(kept)  # item indices that B covers (all, or the popular)
        self.weights = torch.zeros(0, 0)  # filled by fit (or load_state)

    def fit(self, train: Interactions, validator: Validator | None = None) -> FitReport:
        started = time.perf_counter()
        x = train.matrix()
        if len(self.kept) < self.n_items:
            counts = train.item_counts()
            # the most popular items, ties to the lower index; sorted so columns keep order
            popular = np.argsort(-counts, kind="stable")[: len(self.kept)]
            self.kept = torch.as_tensor(np.sort(popular))
            x = x[:, self.kept.numpy()]
        gram = torch.as_tensor((x.T @ x).toarray(), dtype=torch.float64)
        gram.diagonal().add_(self.config.l2)
        precision = torch.linalg.inv(gram)
        del gram
        weights = -precision / precision.diagonal()
        del precision
        weights.diagonal().zero_()
        self.weights = weights.float()
        return one_shot_report(self, validator, started)

    def score(
        self, users: np.ndarray, histories: Histories, items: np.ndarray | None = None
    ) -> torch.Tensor:
        # sparse rows times B: a history of ~100 items costs 100 rows of B, not n_items
        rows = histories.matrix(users)
        if len(self.kept) == self.n_items:
            return gather_items(torch.as_tensor(rows @ self.weights.numpy()), items)
        kept = self.kept.numpy()
        scores = torch.full((len(users), self.n_items), -torch.inf)
        scores[:, self.kept] = torch.as_tensor(rows[:, kept] @ self.weights.numpy())
        return gather_items(scores, items)

    def state(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights, "kept": self.kept}

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.weights = state["weights"]
        self.kept = state.get("kept", torch.arange(self.n_items))  # files saved before max_items

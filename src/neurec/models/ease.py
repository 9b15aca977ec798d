"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

An item x item weight matrix B with zero diagonal, in closed form:
P = (X^T X + lambda I)^-1, B = I - P / diag(P). A user's scores are their history row
times B, so it reads the history it is given (train + validation at test time).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

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

    def __post_init__(self) -> None:
        check_positive("l2", self.l2)


@register
class EASE(Recommender):
    name = "ease"
    family = "baselines"
    config_class = EASEConfig
    uses_history = True

    def __init__(self, config: EASEConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.weights = torch.zeros(n_items, n_items)

    def fit(self, train: Interactions, validator: Validator | None = None) -> FitReport:
        started = time.perf_counter()
        x = train.matrix()
        gram = torch.as_tensor((x.T @ x).toarray(), dtype=torch.float64)
        gram.diagonal().add_(self.config.l2)
        precision = torch.linalg.inv(gram)
        weights = -precision / precision.diagonal()
        weights.diagonal().zero_()
        self.weights = weights.float()
        return one_shot_report(self, validator, started)

    def score(
        self, users: np.ndarray, histories: Histories, items: np.ndarray | None = None
    ) -> torch.Tensor:
        rows = torch.as_tensor(histories.matrix(users).toarray())
        return gather_items(rows @ self.weights, items)

    def state(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights}

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.weights = state["weights"]

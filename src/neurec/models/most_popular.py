"""Most popular: every user gets the items with the most training interactions.

The floor every personalised model must clear; no parameters to learn beyond counts.
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
    gather_items,
    one_shot_report,
    register,
)


@dataclass
class MostPopularConfig:
    pass


@register
class MostPopular(Recommender):
    name = "most_popular"
    family = "baselines"
    config_class = MostPopularConfig
    uses_history = True  # the same counts for everyone: any user, new ones too, is scored

    def __init__(self, config: MostPopularConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.popularity = torch.zeros(n_items)

    def fit(self, train: Interactions, validator: Validator | None = None) -> FitReport:
        started = time.perf_counter()
        self.popularity = torch.as_tensor(train.item_counts(), dtype=torch.float32)
        return one_shot_report(self, validator, started)

    def score(
        self, users: np.ndarray, histories: Histories, items: np.ndarray | None = None
    ) -> torch.Tensor:
        full = self.popularity.expand(len(users), -1)
        return gather_items(full, items)

    def state(self) -> dict[str, torch.Tensor]:
        return {"popularity": self.popularity}

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.popularity = state["popularity"]

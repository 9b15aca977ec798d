"""GMF, Generalized Matrix Factorization (He et al., "Neural Collaborative Filtering", 2017).

A user and an item embedding multiplied element-wise, then a learned linear output layer:
``y(u, i) = sigmoid(h . (p_u * q_i) + b)`` (Section 3.2). With h fixed to ones this is plain
matrix factorisation; learning h lets factors weigh differently. Trained on sampled
negatives with log loss (or BPR), see :mod:`neurec.models.neural_cf`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neurec.models.base import check_positive, register
from neurec.models.neural_cf import (
    NeuralCFConfig,
    NeuralCFRecommender,
    PredictionNet,
    lookup,
    paper_embedding,
)


@dataclass
class GMFConfig(NeuralCFConfig):
    factors: int = 8  # predictive factors: the paper tries 8 to 64, 8 by default

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("factors", self.factors)


class GMFLayer(nn.Module):
    """The GMF branch: ``weight . (p_u * q_i)`` for every user x candidate pair."""

    def __init__(self, n_users: int, n_items: int, factors: int) -> None:
        super().__init__()
        self.width = factors
        self.user = paper_embedding(n_users, factors)
        self.item = paper_embedding(n_items, factors)

    def forward(self, users: torch.Tensor, items: torch.Tensor, weight: torch.Tensor):
        # weight . (p * q) = (weight * p) . q: the weight applied once per user, then one
        # product per pair; einsum broadcasts a shared [1, C] item row as a matrix product
        user = lookup(self.user, users) * weight  # [B, k]
        return torch.einsum("bk,bck->bc", user, lookup(self.item, items))  # [B, C]


@register
class GMF(NeuralCFRecommender):
    name = "gmf"
    config_class = GMFConfig
    config: GMFConfig

    def build_module(self) -> nn.Module:
        return PredictionNet({"gmf": GMFLayer(self.n_users, self.n_items, self.config.factors)})

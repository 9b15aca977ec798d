"""NCF's MLP (He et al., "Neural Collaborative Filtering", 2017), registered as ``ncf``.

User and item embeddings are concatenated and fed through a tower of ReLU layers that
halves in width, then a linear output layer (Section 3.3). ``layers`` follows the paper and the
authors' code: ``layers[0]`` is the concatenated embedding size (so each embedding has
``layers[0] / 2``), the rest are the hidden layers; the default [64, 32, 16, 8] is the
paper's 3-layer tower with 8 predictive factors. ``dropout`` (0 in the paper and the authors'
code) drops inputs of every tower layer in training, as RecBole's MLP does.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from neurec.models.base import check_dropout, register
from neurec.models.neural_cf import (
    NeuralCFConfig,
    NeuralCFRecommender,
    PredictionNet,
    lookup,
    paper_embedding,
)


def check_layers(field_name: str, layers: tuple[int, ...]) -> None:
    """For a config's ``__post_init__``: a tower of >= 2 positive sizes, the first even."""
    if len(layers) < 2 or min(layers) < 1 or layers[0] % 2:
        raise ValueError(
            f"{field_name}: expected at least two positive sizes, the first even (it is the "
            f"user and item embeddings side by side), e.g. [64, 32, 16, 8]; got {list(layers)}"
        )


@dataclass
class NCFConfig(NeuralCFConfig):
    # [2 x embedding size, hidden...]: the paper's 3-layer halving tower with 8 factors
    layers: tuple[int, ...] = (64, 32, 16, 8)
    dropout: float = 0.0  # the paper has none

    def __post_init__(self) -> None:
        super().__post_init__()
        check_layers("layers", self.layers)
        check_dropout("dropout", self.dropout)


class MLPLayers(nn.Module):
    """The MLP branch: ``weight . tower([p_u; q_i])`` for every user x candidate pair."""

    def __init__(
        self, n_users: int, n_items: int, layers: tuple[int, ...], dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.width, self.dropout = layers[-1], dropout
        self.user = paper_embedding(n_users, layers[0] // 2)
        self.item = paper_embedding(n_items, layers[0] // 2)
        self.tower = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(layers))

    def forward(self, users: torch.Tensor, items: torch.Tensor, weight: torch.Tensor):
        first, half = self.tower[0], self.user.embedding_dim
        # dropout before every layer; on [p; q] it is dropout on each half (a row's
        # candidates share its user's mask)
        p, on = self.dropout, self.training and self.dropout > 0
        user, item = lookup(self.user, users), lookup(self.item, items)
        if on:
            user, item = F.dropout(user, p), F.dropout(item, p)
        # W [p; q] + b = (W_p p + b) + W_q q: each half once per user / item, not per pair
        user = F.linear(user, first.weight[:, :half], first.bias)  # [B, H]
        item = F.linear(item, first.weight[:, half:])  # [B or 1, C, H]
        # feature-major [H, B * C] from here: the rest are wide matrix products, which run
        # about twice as fast on CPU as tall-skinny [B * C, H] ones at these widths
        hidden = torch.relu_(user.T[:, :, None] + item.permute(2, 0, 1))
        shape = hidden.shape[1:]
        hidden = hidden.reshape(len(hidden), -1)
        for layer in self.tower[1:]:
            if on:
                hidden = F.dropout(hidden, p)
            hidden = torch.relu_(torch.addmm(layer.bias[:, None], layer.weight, hidden))
        return (weight @ hidden).view(shape)


@register
class NCF(NeuralCFRecommender):
    name = "ncf"
    config_class = NCFConfig
    config: NCFConfig

    def build_module(self) -> nn.Module:
        cfg = self.config
        return PredictionNet(
            {"mlp": MLPLayers(self.n_users, self.n_items, cfg.layers, cfg.dropout)}
        )

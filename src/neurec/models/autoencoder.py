"""What Mult-DAE and Mult-VAE share (Liang et al., "Variational Autoencoders for
Collaborative Filtering", WWW 2018): not a model, the common half of two.

Both read a user's whole binary item vector, L2-normalise it and drop half of its
entries, push it through a tanh MLP [n_items -> 600 -> 200] and a mirrored decoder, and
are trained with the multinomial log-likelihood: a log-softmax over every item, summed
over the user's items. They differ only in the middle (a Gaussian latent with a KL term,
or none), which lives in ``multvae.py`` and ``multdae.py``.

Because the input *is* the user's history, scoring reads the ``histories`` it is given
(train at validation time, train + validation at test time): no per-user embedding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurec.interactions import Histories, Interactions
from neurec.models.base import check_positive, gather_items
from neurec.training import TorchConfig, TorchRecommender


@dataclass
class AutoencoderConfig(TorchConfig):
    """Paper defaults (and the authors' notebook): Adam 1e-3, batches of 500 users."""

    epochs: int = 200
    batch_size: int = 500  # users per batch
    patience: int = 20  # validation NDCG is noisy epoch to epoch (dropout, sampling)
    # encoder widths, n_items -> 600 -> latent_dim, the decoder mirrored (the paper's);
    # () gives the authors' notebook's I-200-I
    hidden_dims: tuple[int, ...] = (600,)
    latent_dim: int = 200
    dropout: float = 0.5  # on the normalised input: the denoising part

    def __post_init__(self) -> None:
        super().__post_init__()
        for i, width in enumerate(self.hidden_dims):
            check_positive(f"hidden_dims[{i}]", width)
        check_positive("latent_dim", self.latent_dim)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: expected 0 <= dropout < 1, got {self.dropout!r}")


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with tanh between them (none after the last), initialised as the
    authors did: Glorot-uniform weights, biases ~ N(0, 0.001) truncated at 2 sigma."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(pairwise(dims)):
        linear = nn.Linear(d_in, d_out)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.trunc_normal_(linear.bias, std=0.001, a=-0.002, b=0.002)
        layers.append(linear)
        if i < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class NormaliseAndDrop(nn.Module):
    """The corrupted input: unit-length rows, then dropout (active only in training)."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(F.normalize(x, dim=1))


def multinomial_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-sum_i x_ui log softmax(logits_u)_i, averaged over the users of the batch."""
    return -(F.log_softmax(logits, dim=1) * x).sum(dim=1).mean()


def training_users(train: Interactions) -> np.ndarray:
    """Every user with a training interaction is one training example."""
    return np.flatnonzero(train.histories.lengths() > 0)


class AutoencoderRecommender(TorchRecommender):
    """Batches of whole user rows in; the module's ``forward(x)`` returns item logits."""

    config: AutoencoderConfig
    uses_history = True  # no user vector: a new user is scored from their items alone

    def training_batches(
        self, train: Interactions, rng: np.random.Generator
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        matrix = train.matrix()
        users = rng.permutation(training_users(train))
        for start in range(0, len(users), self.config.batch_size):
            rows = matrix[users[start : start + self.config.batch_size]]
            yield (torch.as_tensor(rows.toarray()),)

    def score_batch(
        self, users: torch.Tensor, histories: Histories, items: torch.Tensor | None
    ) -> torch.Tensor:
        rows = histories.matrix(users.cpu().numpy()).toarray()
        logits = self.module(torch.as_tensor(rows, device=self.device))
        return gather_items(logits, items)

"""The neural_cf family: what GMF, NCF (the MLP model) and NeuMF share (He et al., "Neural
Collaborative Filtering", WWW 2017).

* the training knobs of the family: ``negatives`` sampled per positive, resampled every
  epoch, and the loss: ``bce`` (the paper's pointwise log loss) or ``bpr`` (pairwise,
  Rendle et al. 2009; the paper leaves pairwise learners to future work);
* :class:`PredictionNet`: branches that each end in a last hidden layer, concatenated
  into one linear output layer (NeuMF, Section 3.4; GMF and NCF are its one-branch cases);
* :class:`NeuralCFRecommender`: epoch batches, loss and scoring for such a network.

A batch row is a user, one positive item and its negatives: ``items[:, 0]`` is the
positive, ``items[:, 1:]`` the negatives. Scoring the user once per row (not once per
pair) is what makes the MLP cheap: its first layer's user half is computed per row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurec.interactions import Histories, Interactions
from neurec.models.base import check_choice, check_positive
from neurec.sampling import PairLookup, sample_training_negatives
from neurec.training import TorchConfig, TorchRecommender

LOSSES = ("bce", "bpr")
# user x item pairs scored at once: 64k keeps the MLP's [hidden, pairs] activations at
# 8 MB (32 features); chunks 4x larger took twice as long to rank all ML-1M items on CPU
PAIRS_PER_CHUNK = 1 << 16


@dataclass
class NeuralCFConfig(TorchConfig):
    """Training knobs of the neural_cf family (each model's config extends it).

    ``batch_size`` counts positives; each comes with its ``negatives``, so a batch scores
    ``batch_size * (1 + negatives)`` pairs (the paper's batch of 256 counted pairs).
    """

    # the paper's values; conf/base/parameters_<model>.yml overrides batch size, learning
    # rate and negatives with values chosen on validation NDCG@10 (ML-1M) for quality within
    # seconds per epoch on 2 CPU cores (batches of 256 make an ML-1M epoch ~10x slower)
    epochs: int = 100  # at most: early stopping on validation ends sooner
    # validation NDCG@10 sits at most_popular's level for 5-10 epochs before the
    # embeddings learn more than popularity (GMF on ML-100K: best epoch 35), so patience 3
    # stopped GMF and NCF on that plateau
    patience: int = 10
    batch_size: int = 256
    learning_rate: float = 0.001  # Adam
    negatives: int = 4  # sampled per positive, fresh every epoch
    loss: str = "bce"  # bce (the paper's log loss) | bpr (pairwise)
    # the paper trains on every interaction but the test one: refit on train + validation
    # for the epochs chosen on validation (TorchConfig.refit). Its sampled-99 test HR@10 on
    # the ML-1M half rose from 0.691 to 0.711 with GMF (seed 42): a user's embedding misses
    # his latest interaction otherwise, where a sequence model reads it as input
    refit: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("negatives", self.negatives)
        check_choice("loss", self.loss, LOSSES)


def paper_embedding(n_rows: int, dim: int) -> nn.Embedding:
    """An embedding table initialised from N(0, 0.01) as in the authors' code."""
    table = nn.Embedding(n_rows, dim)
    nn.init.normal_(table.weight, std=0.01)
    return table


def lookup(table: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` for an index of any shape, as ``[*index.shape, dim]``.

    ``index_select``'s backward (an index_add) is 2-4x faster on CPU than the dense
    backward of ``nn.Embedding``'s lookup, which took a fifth of a NeuMF training step.
    """
    return table.weight.index_select(0, index.reshape(-1)).view(*index.shape, -1)


class PredictionNet(nn.Module):
    """Branches' last hidden layers concatenated into one linear output (a logit).

    Each branch is a module with a ``width`` (its last hidden layer's size) and
    ``forward(users [B], items [B or 1, C], weight [width]) -> [B, C]`` returning
    ``weight . h(user, item)``. A linear layer over a concatenation is the sum of its
    halves, so each branch applies its own slice of the output weights and no
    ``[B, C, width]`` concatenation is built.
    """

    def __init__(self, branches: dict[str, nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(branches)
        self.out = nn.Linear(sum(b.width for b in branches.values()), 1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        weights = self.out.weight[0].split([b.width for b in self.branches.values()])
        scores = self.out.bias
        for branch, weight in zip(self.branches.values(), weights, strict=True):
            scores = scores + branch(users, items, weight)
        return scores


class NeuralCFRecommender(TorchRecommender):
    """Sampled-negative training and batched scoring for a :class:`PredictionNet`."""

    family = "neural_cf"  # the paper's framework; "ncf" is its MLP model, "ncf_paper" its data
    config: NeuralCFConfig

    def training_batches(
        self, train: Interactions, rng: np.random.Generator
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        cfg = self.config
        # fresh negatives every epoch (the paper resamples them per iteration)
        negatives = sample_training_negatives(
            train.user, cfg.negatives, PairLookup(train.matrix()), rng
        )
        order = rng.permutation(len(train))
        users = torch.from_numpy(train.user[order])
        items = torch.from_numpy(np.concatenate([train.item[:, None], negatives], axis=1)[order])
        for start in range(0, len(order), cfg.batch_size):
            yield users[start : start + cfg.batch_size], items[start : start + cfg.batch_size]

    def batch_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        users, items = batch
        logits = self.module(users, items)  # [B, 1 + negatives], column 0 the positive
        positive, negative = logits[:, :1], logits[:, 1:]
        if self.config.loss == "bpr":  # -log sigmoid(s_pos - s_neg), each negative paired
            return F.softplus(negative - positive).mean()
        # binary cross-entropy with logits: -log sigmoid(s) for positives,
        # -log(1 - sigmoid(s)) for negatives, averaged over all pairs as in the paper
        return (F.softplus(-positive).sum() + F.softplus(negative).sum()) / logits.numel()

    def score_batch(
        self, users: torch.Tensor, histories: Histories, items: torch.Tensor | None
    ) -> torch.Tensor:
        # all items: one [1, n_items] row broadcast against every user; candidates: [B, C]
        every_item = items is None
        if every_item:
            items = torch.arange(self.n_items, device=users.device)[None, :]
        rows = max(1, PAIRS_PER_CHUNK // items.shape[1])
        return torch.cat(
            [
                self.module(
                    users[start : start + rows],
                    items if every_item else items[start : start + rows],
                )
                for start in range(0, len(users), rows)
            ]
        )

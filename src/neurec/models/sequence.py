"""What the sequential models share: the config, sequence batches and scoring.

Not a model (nothing here is registered). Conventions, common to ``rnn``, ``sasrec`` and
``bert4rec``:

* a sequence is a row of ``Histories.padded``: the most recent items, left-padded, ids
  shifted by +1 so that 0 is padding (``nn.Embedding(padding_idx=0)``);
* a sequence module maps ``[B, L]`` ids to hidden states ``[B, L, d]`` aligned with its
  input columns, and ``item_scores`` maps hidden states to scores over the ``n_items``
  real items (column ``i`` is item index ``i``, i.e. embedding row ``i + 1``);
* at scoring time the input is the history the evaluator passes (train at validation,
  train + validation at test), and the score of the next item is read at the last column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurec.interactions import Histories, Interactions
from neurec.models.base import check_choice, check_positive
from neurec.models.losses import FullSoftmax, SequenceLoss
from neurec.training import TorchConfig, TorchRecommender

TRAIN_WINDOWS = ("latest", "random")
BATCHES = ("by_length", "uniform")


@dataclass
class SequenceConfig(TorchConfig):
    max_len: int = 200  # most recent items a model reads; older ones are dropped
    # an upper bound: early stopping on validation NDCG@10 ends training
    epochs: int = 100
    batch_size: int = 128
    # the RNN's; SASRec and BERT4Rec set their own. (Chosen when SASRec, under its former
    # initialisation, sat at popularity level for 8 epochs at 1e-3 and left it at epoch 5
    # at 3e-3.)
    learning_rate: float = 3e-3
    patience: int = 5
    # what a history longer than a training sequence trains on each epoch. latest: its
    # most recent items (the papers' and their reference code's choice); random: a window
    # of consecutive items drawn uniformly each epoch, so over the epochs every item of a
    # long history is a target (on the ML-1M half at 200 items, 34% of the training items
    # lie before the latest window and are never seen under latest). On that half random
    # gained nothing beyond seed noise (GRU over 3 seeds: 0.1645 vs 0.1648 test NDCG@10;
    # SASRec 0.1564 vs 0.1590; BERT4Rec 0.1421 vs 0.1356), so latest stays the default
    train_window: str = "latest"
    # how users are put into batches. by_length: users of similar history length share a
    # batch (sorted by a jittered length, batches in random order), which computes half the
    # padding but weighs a short history's positions many times more (one batch mean each);
    # uniform: users drawn uniformly, each position weighing the same, as SASRec+ trains
    # (the batch still runs in length groups, so its cost stays near by_length's). SASRec
    # on the ML-1M half, validation NDCG@10 at epoch 30: uniform 0.1727, by_length 0.1594.
    # SASRec and the RNN take uniform; BERT4Rec keeps by_length: on the synthetic data it
    # stayed at popularity level for 30 epochs with uniform batches (and SASRec+'s other
    # choices)
    batches: str = "by_length"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("max_len", self.max_len)
        check_choice("train_window", self.train_window, TRAIN_WINDOWS)
        check_choice("batches", self.batches, BATCHES)


# users a model reads at once at scoring time: groups small enough to follow the length
# distribution closely, large enough that per-call overhead stays small
INFERENCE_GROUP = 128

# --- batches and scoring -----------------------------------------------------------------


class SequenceModule(nn.Module):
    """A sequence model's network: hidden states, and its output layer over every item."""

    def output_layer(
        self, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(queries, item_weights [n_items, d], bias)``: item scores are
        ``F.linear(queries, item_weights, bias)``. The full softmax takes the three apart
        (:func:`neurec.models.losses.chunked_cross_entropy`) so as never to hold them all."""
        raise NotImplementedError

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores ``[.., n_items]`` of every item for hidden states ``[.., d]``."""
        return F.linear(*self.output_layer(hidden))


class SequenceRecommender(TorchRecommender):
    """Base of the sequential models: user batches of padded sequences, a loss object
    (:mod:`neurec.models.losses`) and last-column scoring.

    ``self.module(seqs) -> [B, L, d]``, ``self.module.last_states(seqs) -> [B, d]`` (the
    last column of the former, which scoring reads), ``self.module.item_scores(hidden) ->
    [.., n_items]`` and ``self.module.candidate_scores(hidden, items)``. By default a model
    learns to predict the next item at every position; BERT4Rec overrides the batches
    (cloze).
    """

    config: SequenceConfig
    uses_history = True  # no user vector: scores read only the items of the history

    def __init__(self, config: SequenceConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.loss = self.build_loss()

    def build_loss(self) -> SequenceLoss:
        """The training objective the config chooses (default: full softmax)."""
        return FullSoftmax()

    def training_batches(
        self, train: Interactions, rng: np.random.Generator
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        sample = self.loss.sampler(train)
        width = self.config.max_len + 1  # max_len inputs, each with its next item
        for users, seqs in self.sequence_batches(train, rng, width, min_length=2):
            # one target per input column; a batch of short histories is narrower than max_len
            yield (torch.as_tensor(seqs), *sample(users, seqs.shape[1] - 1, rng))

    def batch_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        def loss_of(seqs: torch.Tensor, *samples: torch.Tensor) -> torch.Tensor:
            inputs, targets, valid = next_item_targets(seqs)
            return self.loss(self.module, self.module(inputs), targets, valid, *samples)

        return self.position_mean(loss_of, lambda seqs: (seqs[:, :-1] > 0).sum(), batch)

    def position_mean(
        self,
        loss_of: Callable[..., torch.Tensor],
        positions_of: Callable[..., torch.Tensor],
        batch: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        """``loss_of(*batch)``; a uniform batch of a per-position loss runs in length groups."""
        if self.config.batches != "uniform" or not self.loss.per_position:
            return loss_of(*batch)  # already narrow, or its negatives come with the batch
        return mean_over_length_groups(loss_of, positions_of, batch)

    def sequence_batches(
        self, train: Interactions, rng: np.random.Generator, width: int, min_length: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of ``(users, padded [B, <= width])``, users with >= min_length items.

        ``config.batches`` says how users share a batch; batches come in random order. A
        history longer than ``width`` gives the window ``config.train_window`` picks.
        """
        histories = train.histories
        users = np.flatnonzero(histories.lengths() >= min_length)
        if self.config.batches == "uniform":
            users = users[rng.permutation(len(users))]
        else:  # by_length: a batch is only as wide as its longest history
            lengths = np.minimum(histories.lengths(users), width)
            jittered = lengths * rng.uniform(0.75, 1.25, len(users))
            users = users[np.argsort(jittered, kind="stable")]
        starts = np.arange(0, len(users), self.config.batch_size)
        for start in starts[rng.permutation(len(starts))]:
            batch = users[start : start + self.config.batch_size]
            ends = self.window_ends(batch, width, histories, rng)
            yield batch, recent_items(histories, batch, width, ends)

    def window_ends(
        self, users: np.ndarray, width: int, histories: Histories, rng: np.random.Generator
    ) -> np.ndarray | None:
        """Where each user's training window ends (None: at the history's end)."""
        if self.config.train_window == "latest":
            return None  # draws nothing: results under latest do not depend on this option
        lengths = histories.lengths(users)
        # one of the length - width + 1 windows that fit, uniformly; the whole history if short
        return (
            histories.indptr[users]
            + np.minimum(lengths, width)
            + rng.integers(0, np.maximum(lengths - width, 0) + 1)
        )

    def inference_sequences(self, histories: Histories, users: np.ndarray) -> np.ndarray:
        """The model's input at scoring time: the user's most recent ``max_len`` items."""
        return recent_items(histories, users, self.config.max_len)

    def score_batch(
        self, users: torch.Tensor, histories: Histories, items: torch.Tensor | None
    ) -> torch.Tensor:
        """Scores read at the last column, users of similar history length run together.

        The evaluator's batches come in user order, where nearly every batch holds a
        history of ``max_len`` items; sorted by length, each group of
        ``INFERENCE_GROUP`` users is only as wide as its longest history (on the ML-1M
        half at 200 items: half the columns). Trimming padding changes no output.
        """
        users_np = users.cpu().numpy()
        order = np.argsort(histories.lengths(users_np), kind="stable")
        states = []
        for start in range(0, len(order), INFERENCE_GROUP):
            seqs = self.inference_sequences(
                histories, users_np[order[start : start + INFERENCE_GROUP]]
            )
            states.append(self.module.last_states(torch.as_tensor(seqs, device=users.device)))
        hidden = torch.cat(states)[torch.as_tensor(np.argsort(order), device=users.device)]
        scores = self.module.item_scores(hidden)
        return scores if items is None else scores.gather(1, items)


def recent_items(
    histories: Histories, users: np.ndarray, max_len: int, ends: np.ndarray | None = None
) -> np.ndarray:
    """``Histories.padded`` no wider than the batch's longest history (at least 1 column).

    Positions count from each row's first item, so trimming all-padding columns changes
    no output; it only saves computation on batches of short histories. ``ends``: as in
    ``Histories.padded``.
    """
    longest = int(histories.lengths(users).max(initial=0))
    return histories.padded(users, max(1, min(max_len, longest)), ends=ends)


# a uniform batch runs as this many groups of rows of similar history length, each only as
# wide as its longest: the same loss as the whole batch (the mean over all its positions),
# without computing the padding that short histories leave in a batch of long ones. SASRec
# on the ML-1M half (47% of a uniform batch's columns are padding), 2 threads: 9.1 s an
# epoch in 4 groups, 9.8 s in 2, 9.5 s in 8, 11.7 s whole
LENGTH_GROUPS = 4


def mean_over_length_groups(
    loss_of: Callable[..., torch.Tensor],
    positions_of: Callable[..., torch.Tensor],
    batch: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """``loss_of(*batch)``, a mean over the batch's ``positions_of(*batch)`` positions,
    computed on its ``length_groups``: each group's mean weighted by its share."""
    positions = positions_of(*batch)
    loss = batch[0].new_zeros((), dtype=torch.float32)
    for group in length_groups(*batch):
        loss = loss + loss_of(*group) * (positions_of(*group) / positions)
    return loss


def length_groups(*tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
    """``[B, L]`` tensors aligned with the first (left-padded sequences) in ``LENGTH_GROUPS``
    groups of rows of similar length, each without the columns that are padding in all of
    its rows. Whether positions count from each row's first item or back from its end,
    dropping those columns leaves every item's position, and so its output, unchanged."""
    lengths = (tensors[0] > 0).sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    for rows in order.tensor_split(LENGTH_GROUPS):
        if len(rows):
            width = max(1, int(lengths[rows[0]]))
            yield tuple(tensor[rows, -width:] for tensor in tensors)


def next_item_targets(seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shift ``[B, L + 1]`` sequences into inputs and next-item targets ``[B, L]``.

    Returns ``(inputs, targets, valid)``; ``valid`` marks columns whose input is an item
    (the target is then an item too), the positions that carry a loss.
    """
    inputs, targets = seqs[:, :-1], seqs[:, 1:]
    return inputs, targets, inputs > 0

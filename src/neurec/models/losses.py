"""Training objectives of the sequence models (``rnn``, ``sasrec``, ``bert4rec``).

A loss object owns what a batch carries besides its sequences (sampled negatives, drawn
from the training loop's seeded generator) and the loss over the positions that have a
target. Models choose one from their config; the batches and the loop stay the same.

Shapes: ``hidden [B, W, d]`` are the states at the ``W`` target columns of ``B``
sequences, ``targets [B, W]`` their item ids shifted by +1 (0 = padding), ``valid [B, W]``
the positions that carry a loss. The module gives ``item_scores(hidden) -> [.., n_items]``
(every item) and ``candidate_scores(hidden [.., W, d], items [.., C]) -> [.., W, C]``
(shifted ids); SASRec's also ``pair_scores(hidden [B, W, d], items [B, W]) -> [B, W]``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurec.interactions import Interactions
from neurec.sampling import PairLookup, sample_training_negatives

# (users [B], target columns W, rng) -> the batch's extra tensors
Sampler = Callable[[np.ndarray, int, np.random.Generator], tuple[torch.Tensor, ...]]


def no_samples(users: np.ndarray, width: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    return ()


class SequenceLoss(ABC):
    """One training objective: its batches' extra tensors and its loss."""

    # the loss is the mean of one term per position, each depending on that position alone
    # (no negatives shared across the batch): any split of a batch's rows, each part's mean
    # weighted by its share of the positions, gives the same value
    per_position: bool = False

    def sampler(self, train: Interactions) -> Sampler:
        """The epoch's sampler of extra batch tensors (none by default), set up from train."""
        return no_samples

    @abstractmethod
    def __call__(
        self,
        module: nn.Module,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        valid: torch.Tensor,
        *samples: torch.Tensor,
    ) -> torch.Tensor:
        """The batch's scalar loss."""


class FullSoftmax(SequenceLoss):
    """Cross-entropy over every item, a chunk of positions at a time (no [N, n_items] tensor).

    The proper negatives (every other item) that sampled re-implementations approximate
    badly (Hidasi & Czapp 2023; Klenitskiy & Vasilev, RecSys 2023).
    """

    per_position = True

    def __call__(self, module, hidden, targets, valid, *samples):
        queries, weight, bias = module.output_layer(hidden[valid])
        return chunked_cross_entropy(queries, weight, bias, targets[valid] - 1)


# logits one chunk of rows holds: 2**20 float32 values (4 MB; 290 rows of the ML-1M half's
# 3,615 items). SASRec's epoch on the ML-1M half (2 cores, 2**18..2**21 tried): 8.7 s at
# 2**20, 8.9-9.0 s at the others, 12.3 s with F.cross_entropy over whole batches
CHUNK_LOGITS = 2**20


def chunked_cross_entropy(
    queries: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
) -> torch.Tensor:
    """``F.cross_entropy(F.linear(queries, weight, bias), targets)``, the same value and
    gradients (to float32 rounding), without ever holding the ``[N, n_items]`` logits.

    The logits of a chunk of rows are computed, reduced to their log-sum-exp and dropped;
    the backward recomputes them chunk by chunk and forms the gradient in place (softmax
    minus one-hot). Memory: one chunk instead of three ``N x n_items`` tensors (logits,
    log-softmax, gradient), whatever the catalogue; time: SASRec's loss on the ML-1M half
    takes half as long, although every product runs twice, because each chunk stays in
    cache instead of streaming ~370 MB per batch through memory three times.
    """
    return _ChunkedCrossEntropy.apply(queries, weight, bias, targets)


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, queries, weight, bias, targets):
        rows = max(1, CHUNK_LOGITS // weight.shape[0])
        log_norm = torch.empty(len(queries), dtype=queries.dtype, device=queries.device)
        target_logits = torch.empty_like(log_norm)
        for start in range(0, len(queries), rows):
            chunk = slice(start, start + rows)
            logits = F.linear(queries[chunk], weight, bias)
            log_norm[chunk] = torch.logsumexp(logits, 1)
            target_logits[chunk] = logits.gather(1, targets[chunk, None])[:, 0]
        ctx.save_for_backward(queries, weight, bias, targets, log_norm)
        ctx.rows = rows
        return (log_norm - target_logits).mean()

    @staticmethod
    def backward(ctx, grad):
        queries, weight, bias, targets, log_norm = ctx.saved_tensors
        grad_queries = torch.empty_like(queries)
        grad_weight = torch.zeros_like(weight)
        grad_bias = None if bias is None else torch.zeros_like(bias)
        scale = grad / len(queries)
        for start in range(0, len(queries), ctx.rows):
            chunk = slice(start, start + ctx.rows)
            # d loss / d logits = (softmax - one_hot(target)) / N, built in the logits' memory
            delta = F.linear(queries[chunk], weight, bias).sub_(log_norm[chunk, None]).exp_()
            delta[torch.arange(len(delta), device=delta.device), targets[chunk]] -= 1.0
            delta.mul_(scale)
            grad_queries[chunk] = delta @ weight
            grad_weight.addmm_(delta.T, queries[chunk])
            if grad_bias is not None:
                grad_bias += delta.sum(0)
        return grad_queries, grad_weight, grad_bias, None


class SampledSoftmax(SequenceLoss):
    """Cross-entropy over the target and ``n_negatives`` items per sequence.

    Klenitskiy & Vasilev ("Turning Dross Into Gold Loss", RecSys 2023): for each
    sequence, N items the user never interacted with (uniform, with replacement), the
    same for all its positions; with N = 3000 SASRec on ML-20M matched the full softmax at
    2.4x the speed. Logits are ``[B, W, N]`` whatever the catalogue's size, and only
    ``B x N`` item vectors are gathered.
    """

    def __init__(self, n_negatives: int) -> None:
        self.n_negatives = n_negatives

    def sampler(self, train: Interactions) -> Sampler:
        positives = PairLookup(train.matrix())

        def sample(users: np.ndarray, width: int, rng: np.random.Generator):
            negatives = sample_training_negatives(users, self.n_negatives, positives, rng)
            return (torch.as_tensor(negatives + 1),)

        return sample

    def logits(
        self, module: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, negatives
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positive [B, W], negative [B, W, N])`` logits; nothing is ``n_items`` wide."""
        positive = module.candidate_scores(hidden[:, :, None, :], targets[:, :, None])
        return positive[..., 0, 0], module.candidate_scores(hidden, negatives)

    def __call__(self, module, hidden, targets, valid, *samples):
        positive, negative = self.logits(module, hidden, targets, samples[0])
        positive, negative = positive[valid], negative[valid]
        # -log softmax of the target against the negatives, without concatenating them
        return (torch.logaddexp(positive, torch.logsumexp(negative, -1)) - positive).mean()


class SampledBCE(SequenceLoss):
    """SASRec's original loss: one uniform negative per position, never a history item."""

    def sampler(self, train: Interactions) -> Sampler:
        positives = PairLookup(train.matrix())

        def sample(users: np.ndarray, width: int, rng: np.random.Generator):
            negatives = sample_training_negatives(users, width, positives, rng)
            return (torch.as_tensor(negatives + 1),)

        return sample

    def __call__(self, module, hidden, targets, valid, *samples):
        positive = module.pair_scores(hidden, targets)[valid]
        negative = module.pair_scores(hidden, samples[0])[valid]
        return -(F.logsigmoid(positive) + F.logsigmoid(-negative)).mean()


class GeneralisedBCE(SequenceLoss):
    """gBCE (Petrov & Macdonald, "gSASRec", RecSys 2023): ``k`` uniform negatives per
    position, the positive's log-sigmoid weighted by beta = alpha (t (1 - 1/alpha) +
    1/alpha), alpha = k / (n_items - 1), which undoes the over-confidence that negative
    sampling induces. The k scores are read from the position's row of all item scores:
    on catalogues smaller than k * hidden_size (MovieLens) that row is lighter than k
    gathered embeddings.
    """

    def __init__(self, n_negatives: int, t: float, n_items: int) -> None:
        self.n_negatives, self.t, self.n_items = n_negatives, t, n_items

    def sampler(self, train: Interactions) -> Sampler:
        def sample(users: np.ndarray, width: int, rng: np.random.Generator):
            shape = (len(users), width, self.n_negatives)
            return (torch.as_tensor(rng.integers(1, self.n_items + 1, size=shape)),)

        return sample

    def __call__(self, module, hidden, targets, valid, *samples):
        hidden, targets, negatives = hidden[valid], targets[valid], samples[0][valid]
        alpha = self.n_negatives / (self.n_items - 1)
        beta = alpha * (self.t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
        # log(1/k) added to every logit: at initialisation (scores near 0) each position's k
        # negatives then hold a probability mass near 1, not k/2, whose gradient would
        # otherwise drive every hidden state to one constant vector that scores all items
        # low (validation NDCG@10 stays at popularity level). A constant shift leaves the
        # ranking unchanged.
        scores = module.item_scores(hidden) - math.log(self.n_negatives)
        positive = scores.gather(1, (targets - 1).unsqueeze(1)).squeeze(1)
        negative = scores.gather(1, negatives - 1)
        # a sampled "negative" that is the position's own target is no negative
        is_target = negatives == targets.unsqueeze(1)
        negative_loss = -F.logsigmoid(-negative).masked_fill(is_target, 0.0).sum(1)
        # log(sigmoid(s)^beta): gSASRec's calibrated positive probability
        return (-beta * F.logsigmoid(positive) + negative_loss).mean()


class InBatchSoftmax(SequenceLoss):
    """GRU4Rec's sampled softmax: over the batch's own target items (in-batch negatives)
    plus ``n_sample`` extra items drawn in proportion to popularity^``alpha``, shared by
    the batch (its one extra tensor, which data-parallel ranks get whole)."""

    def __init__(self, n_sample: int, alpha: float, n_items: int) -> None:
        self.n_sample, self.alpha, self.n_items = n_sample, alpha, n_items

    def sampler(self, train: Interactions) -> Sampler:
        weights = train.item_counts().astype(np.float64) ** self.alpha
        weights /= weights.sum()

        def sample(users: np.ndarray, width: int, rng: np.random.Generator):
            return (torch.as_tensor(rng.choice(self.n_items, size=self.n_sample, p=weights) + 1),)

        return sample

    def __call__(self, module, hidden, targets, valid, *samples):
        hidden, targets, extra = hidden[valid], targets[valid], samples[0]
        in_batch, target_column = torch.unique(targets, return_inverse=True)
        candidates = torch.cat([in_batch, extra])
        logits = module.candidate_scores(hidden, candidates)
        # an extra sample that is the row's own target is not a negative
        duplicate = torch.zeros_like(logits, dtype=torch.bool)
        duplicate[:, len(in_batch) :] = extra[None, :] == targets[:, None]
        return F.cross_entropy(logits.masked_fill(duplicate, -torch.inf), target_column)

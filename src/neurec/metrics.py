"""Vectorised ranking metrics over a batch of users.

Every protocol reduces to the same shape: a score matrix ``[users, candidates]``, a mask
of the targets and a mask of the candidates allowed to compete (history items are
excluded in full ranking; padding is excluded in sampled sets). A target's position is
its place in the list sorted by score with ties broken against it: a non-target with an
equal score ranks above it, so a constant scorer gets the worst rank, not the best.
"""

from __future__ import annotations

import math

import torch

PAIR_CHUNK = 512  # target rows compared at once; bounds memory at PAIR_CHUNK x candidates


def target_positions(
    scores: torch.Tensor, is_target: torch.Tensor, is_valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based list position of every target: returns ``(row_of_target, position)``."""
    is_valid = is_valid | is_target
    rows, cols = is_target.nonzero(as_tuple=True)
    positions = torch.empty(len(rows), dtype=torch.long, device=scores.device)
    index = torch.arange(scores.shape[1], device=scores.device)
    for start in range(0, len(rows), PAIR_CHUNK):
        r, c = rows[start : start + PAIR_CHUNK], cols[start : start + PAIR_CHUNK]
        row_scores, own = scores[r], scores[r, c].unsqueeze(1)
        row_targets = is_target[r]
        beats_as_other = ~row_targets & (row_scores >= own)
        # among targets, order ties by column so that each target gets a distinct place
        beats_as_target = row_targets & (
            (row_scores > own) | ((row_scores == own) & (index < c.unsqueeze(1)))
        )
        positions[start : start + PAIR_CHUNK] = 1 + (
            is_valid[r] & (beats_as_other | beats_as_target)
        ).sum(1)
    return rows, positions


def ranking_metrics(
    scores: torch.Tensor,
    is_target: torch.Tensor,
    is_valid: torch.Tensor,
    ks: tuple[int, ...],
) -> dict[str, torch.Tensor]:
    """Per-user HR@K, NDCG@K, Recall@K and MRR (rows without a target get NaN).

    HR@K: 1 if any target is in the top K. Recall@K: share of the user's targets in the
    top K. NDCG@K: sum of 1/log2(position+1) over targets in the top K, divided by the
    ideal DCG of min(K, n_targets) targets. MRR: 1 / position of the best-placed target.
    """
    n_users = scores.shape[0]
    rows, positions = target_positions(scores, is_target, is_valid)
    n_targets = is_target.sum(1).float()
    has_target = n_targets > 0
    nan = torch.full((n_users,), float("nan"), device=scores.device)
    out: dict[str, torch.Tensor] = {}
    gain = 1.0 / torch.log2(positions.float() + 1.0)
    for k in ks:
        hit = (positions <= k).float()
        hits = torch.zeros(n_users, device=scores.device).index_add_(0, rows, hit)
        dcg = torch.zeros(n_users, device=scores.device).index_add_(0, rows, hit * gain)
        ideal_gains = torch.tensor(
            [1.0 / math.log2(i + 2) for i in range(k)], device=scores.device
        ).cumsum(0)
        ideal = ideal_gains[(n_targets.clamp(min=1, max=k) - 1).long()]
        out[f"HR@{k}"] = torch.where(has_target, (hits > 0).float(), nan)
        out[f"NDCG@{k}"] = torch.where(has_target, dcg / ideal, nan)
        out[f"Recall@{k}"] = torch.where(has_target, hits / n_targets.clamp(min=1), nan)
    best = torch.full((n_users,), torch.iinfo(torch.long).max, device=scores.device)
    best = best.scatter_reduce(0, rows, positions, reduce="amin")
    out["MRR"] = torch.where(has_target, 1.0 / best.float(), nan)
    return out

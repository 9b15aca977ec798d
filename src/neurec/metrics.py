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

PAIR_CHUNK = 2048  # targets compared at once; bounds memory at PAIR_CHUNK x candidates


def target_positions(
    scores: torch.Tensor, is_target: torch.Tensor, is_valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """1-based list position of every target: returns ``(row_of_target, position)``."""
    rows, cols = is_target.nonzero(as_tuple=True)  # row-major: columns ascend within a row
    own = scores[rows, cols]
    # competitors that are not targets; excluded and target cells can never be ahead
    others = scores.masked_fill(~is_valid | is_target, -torch.inf)
    ahead = torch.empty(len(rows), dtype=torch.long, device=scores.device)
    for start in range(0, len(rows), PAIR_CHUNK):
        chunk = slice(start, start + PAIR_CHUNK)
        ahead[chunk] = (others[rows[chunk]] >= own[chunk].unsqueeze(1)).sum(1, dtype=torch.int32)
    per_row = is_target.sum(1)
    if len(rows) and int(per_row.max()) > 1:
        ahead += _targets_ahead(rows, own, per_row)
    return rows, 1 + ahead


def _targets_ahead(rows: torch.Tensor, own: torch.Tensor, per_row: torch.Tensor) -> torch.Tensor:
    """For rows with several targets: how many of the row's other targets precede each one
    (higher score, or equal score and a lower column, so each gets a distinct place)."""
    first = torch.cumsum(per_row, 0) - per_row
    slot = torch.arange(len(rows), device=rows.device) - first[rows]
    width = int(per_row.max())
    padded = torch.full((len(per_row), width), torch.nan, device=own.device)
    padded[rows, slot] = own
    mine = padded[rows]  # [n_targets, width]: the scores of each target's row-mates
    earlier = torch.arange(width, device=rows.device).unsqueeze(0) < slot.unsqueeze(1)
    mine_own = own.unsqueeze(1)
    # NaN padding compares False, so it never counts
    return ((mine > mine_own) | ((mine == mine_own) & earlier)).sum(1)


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

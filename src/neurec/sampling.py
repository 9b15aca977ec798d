"""Seeded negative sampling, vectorised (no Python loop per sample).

* :func:`sample_candidate_sets`: N distinct negatives per user, never an item the user
  interacted with, uniform or in proportion to popularity; used once per split to build
  the stored evaluation candidates.
* :func:`sample_training_negatives`: negatives for training batches (with replacement
  across rows, resampled until none is a positive of its user).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from neurec.errors import DataError

USER_CHUNK = 1024


def sample_candidate_sets(
    users: np.ndarray,
    interacted: sp.csr_matrix,
    n: int,
    weights: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """``[len(users), n]`` distinct negatives per user, sampled without replacement.

    With ``weights`` (e.g. item popularity) items are drawn in proportion to them; with
    None, uniformly. Successive sampling without replacement, done as draws with
    replacement of which repeats and the user's items are skipped (the same law, exactly):
    the cost grows with users x n, not users x items, so MovieLens-20M's 27k items cost no
    more than 3k.
    """
    n_items = interacted.shape[1]
    interacted = interacted[users].tocsr()
    interacted.sort_indices()
    free = n_items - np.diff(interacted.indptr)
    if (free < n).any():
        worst = int(users[np.argmin(free)])
        raise DataError(
            f"evaluation: user index {worst} has only {int(free.min())} items it never "
            f"interacted with, fewer than the {n} negatives the protocol asks for"
        )
    cdf = None
    if weights is not None:
        cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
        cdf /= cdf[-1]

    def draw(size: tuple[int, int]) -> np.ndarray:
        if cdf is None:
            return rng.integers(0, n_items, size=size)
        return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n_items - 1)

    out = np.full((len(users), n), -1, dtype=np.int64)
    taken = np.zeros(len(users), dtype=np.int64)
    pending = np.arange(len(users))
    width = 2 * n  # most users are done after one round; the others draw again, wider
    while len(pending):
        rows = []
        for start in range(0, len(pending), USER_CHUNK):
            chunk = pending[start : start + USER_CHUNK]
            rows.append(_fill(out, taken, chunk, draw((len(chunk), width)), interacted, n))
        pending = np.concatenate(rows)
        width *= 2
    # order within the set does not matter for metrics; sort for reproducible files
    return np.sort(out, axis=1)


def _fill(
    out: np.ndarray,
    taken: np.ndarray,
    rows: np.ndarray,
    draws: np.ndarray,
    interacted: sp.csr_matrix,
    n: int,
) -> np.ndarray:
    """Append to ``out[rows]`` the draws that are new and not interacted, in draw order,
    up to n per row; returns the rows still short of n."""
    combined = np.concatenate([out[rows], draws], axis=1)  # kept ones first, then new
    n_items = interacted.shape[1]
    seen = PairLookup(interacted[rows])
    local = np.repeat(np.arange(len(rows)), combined.shape[1])
    valid = (combined >= 0) & ~seen.contains(local, combined.reshape(-1) % n_items).reshape(
        combined.shape
    )
    valid &= ~repeated_in_row(combined)
    place = np.cumsum(valid, axis=1) - 1  # slot of each valid draw
    keep = valid & (place < n)
    out[rows[np.nonzero(keep)[0]], place[keep]] = combined[keep]
    taken[rows] = keep.sum(axis=1)
    return rows[taken[rows] < n]


def repeated_in_row(items: np.ndarray) -> np.ndarray:
    """True where an item already appeared earlier in the same row."""
    order = np.argsort(items, axis=1, kind="stable")
    ordered = np.take_along_axis(items, order, axis=1)
    repeated_sorted = np.zeros_like(items, dtype=bool)
    repeated_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeated = np.zeros_like(repeated_sorted)
    np.put_along_axis(repeated, order, repeated_sorted, axis=1)
    return repeated


class PairLookup:
    """Constant-time-ish membership test of (user, item) pairs, built once per data set."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        matrix = matrix.tocsr()
        matrix.sort_indices()
        self.n_items = matrix.shape[1]
        row_of_entry = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        self._keys = row_of_entry * self.n_items + matrix.indices  # sorted: rows, then cols

    def contains(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if len(self._keys) == 0:
            return np.zeros(len(rows), dtype=bool)
        query = rows * self.n_items + cols
        found = np.minimum(np.searchsorted(self._keys, query), len(self._keys) - 1)
        return self._keys[found] == query


def sample_training_negatives(
    users: np.ndarray, n_per_row: int, positives: PairLookup, rng: np.random.Generator
) -> np.ndarray:
    """``[len(users), n_per_row]`` uniform negatives, none a positive of its row's user."""
    negatives = rng.integers(0, positives.n_items, size=(len(users), n_per_row))
    rows = np.repeat(users, n_per_row)
    flat = negatives.reshape(-1)
    bad = np.flatnonzero(positives.contains(rows, flat))
    while len(bad):
        flat[bad] = rng.integers(0, positives.n_items, size=len(bad))
        bad = bad[positives.contains(rows[bad], flat[bad])]
    return negatives

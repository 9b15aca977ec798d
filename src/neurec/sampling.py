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
    None, uniformly. Uses the Gumbel top-k trick: adding Gumbel noise to log-weights and
    taking the top n is exactly successive sampling without replacement.
    """
    n_items = interacted.shape[1]
    log_w = np.zeros(n_items) if weights is None else np.log(np.asarray(weights, dtype=float))
    free = n_items - np.diff(interacted[users].indptr)
    if (free < n).any():
        worst = int(users[np.argmin(free)])
        raise DataError(
            f"evaluation: user index {worst} has only {int(free.min())} items it never "
            f"interacted with, fewer than the {n} negatives the protocol asks for"
        )
    out = np.empty((len(users), n), dtype=np.int64)
    for start in range(0, len(users), USER_CHUNK):
        chunk = users[start : start + USER_CHUNK]
        keys = log_w + rng.gumbel(size=(len(chunk), n_items))
        seen = interacted[chunk].tocoo()
        keys[seen.row, seen.col] = -np.inf
        top = np.argpartition(-keys, n - 1, axis=1)[:, :n]
        # order within the set does not matter for metrics; sort for reproducible files
        out[start : start + len(chunk)] = np.sort(top, axis=1)
    return out


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

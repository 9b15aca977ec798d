"""The canonical interaction table and the index-space structures models train on.

Every source produces one pandas table with columns ``user``, ``item``, ``timestamp``
(integers; ids in the source's own numbering) and optionally ``rating`` (float).
The split stage maps ids to contiguous indices ``0..n-1``; from then on models see
:class:`Interactions` (flat arrays) and :class:`Histories` (each user's items in time
order, CSR-style), never pandas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from neurec.errors import DataError

REQUIRED_COLUMNS = ("user", "item", "timestamp")
OPTIONAL_COLUMNS = ("rating",)
_EXACT_FLOAT = 2**53  # the largest integer range a float64 holds without gaps


def validate_interactions(
    table: pd.DataFrame, origin: str, locate: Callable[[int], str] | None = None
) -> pd.DataFrame:
    """Check and normalise a canonical interaction table.

    ``origin`` names where the table came from (a file path or source name) so the
    error message can point at it; ``locate``, when given, names the place of 0-based
    row ``i`` more precisely (``"u.data: line 17"``; default ``"<origin>: row i+1"``).
    Ids and timestamps must be non-negative integers that int64 holds exactly. Returns a
    copy with int64 ids/timestamps and a float32 rating (when present), in row order.
    """
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"{origin}: expected a table of interactions, got {type(table).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{origin}: missing column(s) {missing}; expected columns "
            f"{list(REQUIRED_COLUMNS)} (+ optional 'rating'), found {list(table.columns)}"
        )
    if table.empty:
        raise DataError(f"{origin}: the interaction table is empty")
    at = locate or (lambda row: f"{origin}: row {row + 1}")
    keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in table.columns]
    extra = [c for c in table.columns if c not in keep]
    out = pd.DataFrame(index=range(len(table)))
    for column in keep:
        values = table[column].reset_index(drop=True)
        row = _first(values.isna().to_numpy())
        if row is not None:
            raise DataError(f"{at(row)}: column '{column}' has missing values (the first here)")
        numeric = pd.to_numeric(values, errors="coerce")
        row = _first(numeric.isna().to_numpy())
        if pd.api.types.is_bool_dtype(numeric):
            row = 0  # True/False would silently become ids 1/0
        if row is not None:
            value = _plain(values.iloc[row])
            raise DataError(f"{at(row)}: column '{column}' must be numeric; it holds {value!r}")
        if column == "rating":
            out[column] = numeric.astype("float32")
            continue
        _require_exact_ids(numeric.to_numpy(), values, column, at)
        out[column] = numeric.astype("int64")
    for column in extra:  # e.g. the 'split' column of pre-split sources travels along
        out[column] = table[column].reset_index(drop=True)
    return out


def _require_exact_ids(
    numbers: np.ndarray, values: pd.Series, column: str, at: Callable[[int], str]
) -> None:
    """Ids and timestamps: integers (1.0 is fine, 1.5 is not), within int64's exact range,
    never negative. Vectorised; only the first offender is located."""
    if numbers.dtype.kind == "f":
        row = _first(~(np.isfinite(numbers) & (numbers == np.floor(numbers))))
        if row is not None:
            raise DataError(
                f"{at(row)}: column '{column}' must hold integers; it holds {values.iloc[row]!r}"
            )
        limit = _EXACT_FLOAT  # written with a decimal point or exponent: read as a float
    else:
        limit = np.iinfo(np.int64).max  # beyond it, pandas reads uint64
    row = _first(numbers > limit)
    if row is not None:
        raise DataError(
            f"{at(row)}: column '{column}' is {values.iloc[row]}; too large for an exact "
            f"integer id or timestamp (at most {limit})"
        )
    row = _first(numbers < 0)
    if row is not None:
        raise DataError(
            f"{at(row)}: column '{column}' is {values.iloc[row]}; expected a non-negative value"
        )


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages read True, not np.True_."""
    return value.item() if isinstance(value, np.generic) else value


def _first(flags: np.ndarray) -> int | None:
    hits = np.flatnonzero(flags)
    return int(hits[0]) if len(hits) else None


@dataclass(frozen=True)
class Interactions:
    """Interactions in index space, sorted by user and then time (stable)."""

    user: np.ndarray
    item: np.ndarray
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        if len(self.user) != len(self.item):
            raise ValueError("user and item arrays differ in length")

    @classmethod
    def from_frame(cls, table: pd.DataFrame, n_users: int, n_items: int) -> Interactions:
        """Build from an index-space table (``user``, ``item`` and, if present, ``timestamp``).

        Rows are ordered by user, then timestamp; ties keep the table's row order.
        """
        keys = ["user", "timestamp"] if "timestamp" in table.columns else ["user"]
        ordered = table.sort_values(keys, kind="stable")
        return cls(
            user=ordered["user"].to_numpy(dtype=np.int64),
            item=ordered["item"].to_numpy(dtype=np.int64),
            n_users=n_users,
            n_items=n_items,
        )

    def __len__(self) -> int:
        return len(self.user)

    @cached_property
    def histories(self) -> Histories:
        """Each user's items in time order."""
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.user, minlength=self.n_users), out=indptr[1:])
        return Histories(indptr=indptr, items=self.item, n_items=self.n_items)

    def matrix(self) -> sp.csr_matrix:
        """Binary user x item matrix (repeated interactions count once)."""
        return self.histories.matrix()

    def item_counts(self) -> np.ndarray:
        """How many interactions each item has (its popularity)."""
        return np.bincount(self.item, minlength=self.n_items)

    def append(self, later: Interactions) -> Interactions:
        """Each user's interactions followed by his ``later`` ones (train + validation)."""
        if (later.n_users, later.n_items) != (self.n_users, self.n_items):
            raise ValueError("interactions cover different user or item counts")
        user = np.concatenate([self.user, later.user])
        # stable: within a user, this table's rows keep their order and precede later's
        order = np.argsort(user, kind="stable")
        item = np.concatenate([self.item, later.item])
        return Interactions(user[order], item[order], self.n_users, self.n_items)


@dataclass(frozen=True)
class Histories:
    """Per-user item sequences in time order: user ``u`` owns ``items[indptr[u]:indptr[u+1]]``."""

    indptr: np.ndarray
    items: np.ndarray
    n_items: int

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def lengths(self, users: np.ndarray | None = None) -> np.ndarray:
        lengths = np.diff(self.indptr)
        return lengths if users is None else lengths[users]

    def of(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def flat(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row, item)`` pairs of the given users' histories; row indexes into ``users``."""
        users = np.asarray(users, dtype=np.int64)
        lengths = self.lengths(users)
        rows = np.repeat(np.arange(len(users)), lengths)
        first_of_row = np.cumsum(lengths) - lengths
        positions = self.indptr[users][rows] + np.arange(len(rows)) - first_of_row[rows]
        return rows, self.items[positions]

    def matrix(self, users: np.ndarray | None = None) -> sp.csr_matrix:
        """Binary matrix of the given users' histories (all users when ``users`` is None)."""
        users = np.arange(self.n_users) if users is None else np.asarray(users)
        rows, items = self.flat(users)
        matrix = sp.csr_matrix(
            (np.ones(len(items), dtype=np.float32), (rows, items)),
            shape=(len(users), self.n_items),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0  # repeated interactions count once
        return matrix

    def padded(
        self, users: np.ndarray, max_len: int, shift: int = 1, ends: np.ndarray | None = None
    ) -> np.ndarray:
        """Left-padded ``[len(users), max_len]`` array of the most recent items.

        Items are shifted by ``shift`` so that 0 can serve as the padding index
        (sequence models reserve it); older items beyond ``max_len`` are dropped.
        ``ends`` (positions in ``items``, one per user, inside the user's history) cuts
        each history there instead of at its end. Vectorised: no Python loop over users.
        """
        users = np.asarray(users, dtype=np.int64)
        ends = self.indptr[users + 1] if ends is None else np.asarray(ends, dtype=np.int64)
        lengths = np.minimum(ends - self.indptr[users], max_len)
        out = np.zeros((len(users), max_len), dtype=np.int64)
        columns = np.arange(max_len)
        # position j of row r holds item at ends[r] - max_len + j when that is inside the history
        offsets = columns[None, :] - max_len + ends[:, None]
        valid = columns[None, :] >= (max_len - lengths)[:, None]
        out[valid] = self.items[offsets[valid]] + shift
        return out

    def append(self, other: Histories) -> Histories:
        """Concatenate per user: this history followed by ``other`` (e.g. train + validation)."""
        if other.n_users != self.n_users:
            raise ValueError("histories cover different user counts")
        lengths = self.lengths() + other.lengths()
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        users_self = np.repeat(np.arange(self.n_users), self.lengths())
        users_other = np.repeat(np.arange(self.n_users), other.lengths())
        # position of each element inside the merged row
        pos_self = indptr[users_self] + (np.arange(len(self.items)) - self.indptr[users_self])
        pos_other = (
            indptr[users_other]
            + self.lengths()[users_other]
            + (np.arange(len(other.items)) - other.indptr[users_other])
        )
        items = np.empty(indptr[-1], dtype=np.int64)
        items[pos_self] = self.items
        items[pos_other] = other.items
        return Histories(indptr=indptr, items=items, n_items=self.n_items)

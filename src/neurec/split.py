"""Filtering, id remapping and train/validation/test splits.

Leave-one-out, exactly: per user, sort by timestamp with ties kept in source-file order
(stable sort); the last interaction is the test item, the second-to-last the validation
item, the rest train. Models fit on train; validation drives early stopping and model
selection; at test time a user's history is train + validation.

Repeats: each user's first interaction with an item (earliest timestamp, ties in file
order) is kept and later ones are dropped before the split, so that an item a user is
tested on is never in that user's history (evaluation excludes history items from
every ranking, so a repeated target could never be hit).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from neurec.errors import ConfigError, DataError
from neurec.evaluation import EvaluationData
from neurec.interactions import Histories, Interactions
from neurec.models.base import check_choice, check_positive
from neurec.provenance import split_fingerprint

logger = logging.getLogger(__name__)

METHODS = ("leave_one_out", "temporal", "random", "given")


@dataclass(frozen=True)
class SplitConfig:
    """The ``split`` parameters block (``conf/base/parameters.yml``)."""

    # per user by time: the protocol of the NCF/SASRec papers, the usual one for next-item
    method: str = "leave_one_out"
    # 0: no k-core filter, every user and item is kept unless asked otherwise
    min_user_interactions: int = 0
    min_item_interactions: int = 0
    # None: every interaction counts as positive (implicit feedback)
    rating_threshold: float | None = None
    # temporal / random only: the common 80/10/10-style cut (10% of the rest validates)
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    # random only: any fixed seed, so that a split is reproducible
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_positive("min_user_interactions", self.min_user_interactions, allow_zero=True)
        check_positive("min_item_interactions", self.min_item_interactions, allow_zero=True)
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction: expected a value in (0, 1), got {self.test_fraction}")
        if not 0 <= self.validation_fraction < 1 - self.test_fraction:
            raise ValueError(
                "validation_fraction: expected 0 <= validation_fraction < 1 - test_fraction "
                f"({1 - self.test_fraction:g}), got {self.validation_fraction}"
            )
        check_positive("seed", self.seed, allow_zero=True)


class IdMaps:
    """Numbers of users and items, from a split's id maps ``user_index`` and ``item_index``
    (columns user|item (index), source_id)."""

    user_index: pd.DataFrame
    item_index: pd.DataFrame

    @property
    def n_users(self) -> int:
        return len(self.user_index)

    @property
    def n_items(self) -> int:
        return len(self.item_index)


@dataclass
class SplitData(IdMaps):
    """Index-space tables (user, item, timestamp) plus the id maps back to the source."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    user_index: pd.DataFrame  # columns: user (index), source_id
    item_index: pd.DataFrame  # columns: item (index), source_id
    duplicates_dropped: int = 0  # repeated (user, item) rows removed before splitting


def apply_rating_threshold(table: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Keep interactions rated at least ``threshold`` (every rating counts when None)."""
    if threshold is None:
        return table
    if "rating" not in table.columns:
        raise ConfigError(
            "parameter split.rating_threshold is set but the data has no 'rating' column"
        )
    return table[table["rating"] >= threshold]


def codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(uniques, code)``: the sorted distinct values and each value's position among them.

    Ids are non-negative integers (``validate_interactions``); when the largest is not far
    above the row count a lookup table does it in linear time, else a sort.
    """
    values = np.asarray(values)
    if len(values) and values.max() < 4 * len(values) + 1024:
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        uniques = np.flatnonzero(present)
        position = np.cumsum(present, dtype=np.int64) - 1
        return uniques.astype(values.dtype), position[values].astype(np.int32)
    uniques, code = np.unique(values, return_inverse=True)
    return uniques, code.astype(np.int32)


def first_interactions(table: pd.DataFrame) -> pd.DataFrame:
    """Each user's first interaction with each item: earliest timestamp, ties in file order."""
    order = np.argsort(table["timestamp"].to_numpy(), kind="stable")
    users = codes(table["user"].to_numpy())[1].astype(np.int64)
    items, item_code = codes(table["item"].to_numpy())
    pair = users * len(items) + item_code
    first = ~pd.Series(pair[order]).duplicated(keep="first").to_numpy()  # hashing: linear
    keep = np.zeros(len(table), dtype=bool)
    keep[order[first]] = True
    return table[keep]  # in file order, as the splits' tie-breaking expects


def k_core(table: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """Iteratively drop users with < min_user and items with < min_item interactions."""
    if table.empty or (min_user <= 1 and min_item <= 1):
        return table
    users = codes(table["user"].to_numpy())[1]
    items = codes(table["item"].to_numpy())[1]
    keep = np.ones(len(table), dtype=bool)
    while True:
        user_counts = np.bincount(users[keep], minlength=users.max() + 1)
        item_counts = np.bincount(items[keep], minlength=items.max() + 1)
        drop = keep & ((user_counts[users] < min_user) | (item_counts[items] < min_item))
        if not drop.any():
            return table[keep]
        keep &= ~drop


def remap_ids(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Map source ids to contiguous int32 indices 0..n-1 (sorted by source id)."""
    users, user_code = codes(table["user"].to_numpy())
    items, item_code = codes(table["item"].to_numpy())
    out = table.copy()
    out["user"] = user_code
    out["item"] = item_code
    user_index = pd.DataFrame({"user": np.arange(len(users)), "source_id": users})
    item_index = pd.DataFrame({"item": np.arange(len(items)), "source_id": items})
    return out, user_index, item_index


def _by_user_and_time(table: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows sorted by user then timestamp (ties in row order), and each row's position
    from its user's end (0: the user's last interaction). Index-space users."""
    user = table["user"].to_numpy()
    times = table["timestamp"].to_numpy()
    span = int(times.max()) - int(times.min()) + 1 if len(times) else 1
    if len(user) and (int(user.max()) + 1) * span < 2**62:
        # one int64 key sorts several times faster than lexsort's two
        key = user.astype(np.int64) * span + (times - times.min())
        order = np.argsort(key, kind="stable")  # stable: ties keep row order
    else:
        order = np.lexsort((times, user))
    counts = np.bincount(user)
    ends = np.cumsum(counts)
    from_end = ends[user[order]] - 1 - np.arange(len(order))
    return table.iloc[order], from_end


def _leave_one_out(table: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    counts = np.bincount(table["user"].to_numpy())
    too_few = np.flatnonzero((counts > 0) & (counts < 3))
    if len(too_few):
        raise DataError(
            f"split: {len(too_few)} user(s) have fewer than 3 interactions (e.g. user "
            f"index {int(too_few[0])} has {int(counts[too_few[0]])}); leave-one-out needs "
            "train, validation and test items: set split.min_user_interactions >= 3 to drop them"
        )
    ordered, from_end = _by_user_and_time(table)
    return ordered[from_end >= 2], ordered[from_end == 1], ordered[from_end == 0]


def _temporal(table: pd.DataFrame, test_fraction: float, validation_fraction: float):
    """One global cut-off time: everything after it is test, so no future leaks into train."""
    times = table["timestamp"].to_numpy()
    test_cut = np.quantile(times, 1.0 - test_fraction)
    valid_cut = np.quantile(times, 1.0 - test_fraction - validation_fraction)
    train = table[times < valid_cut]
    validation = table[(times >= valid_cut) & (times < test_cut)]
    test = table[times >= test_cut]
    # users and items unseen in train cannot be scored by id-based models: drop them
    known_users = set(train["user"].unique())
    validation = validation[validation["user"].isin(known_users)]
    test = test[test["user"].isin(known_users)]
    return train, validation, test


def _random(table: pd.DataFrame, test_fraction: float, validation_fraction: float, seed: int):
    draw = np.random.default_rng(seed).random(len(table))
    test = table[draw < test_fraction]
    validation = table[(draw >= test_fraction) & (draw < test_fraction + validation_fraction)]
    train = table[draw >= test_fraction + validation_fraction]
    return train, validation, test


def _given(table: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """Pre-split sources (the NCF files): test as given; validation = last train item per user."""
    if "split" not in table.columns:
        raise ConfigError(
            "parameter split.method is 'given' but the source has no 'split' column; "
            "use a pre-split source such as data.source: ncf_paper"
        )
    given_train, from_end = _by_user_and_time(table[table["split"] == "train"])
    per_user = np.bincount(given_train["user"].to_numpy())
    has_spare = per_user[given_train["user"].to_numpy()] >= 2
    is_validation = (from_end == 0) & has_spare
    return given_train[~is_validation], given_train[is_validation], table[table["split"] == "test"]


def split_interactions(table: pd.DataFrame, config: SplitConfig) -> SplitData:
    """Filter, drop repeats, remap and split the canonical table as ``config`` says."""
    table = apply_rating_threshold(table, config.rating_threshold)
    kept = first_interactions(table)
    duplicates = len(table) - len(kept)
    logger.info(
        "split: dropped %d repeated (user, item) interaction(s), keeping each user's first "
        "with an item",
        duplicates,
    )
    table = k_core(kept, config.min_user_interactions, config.min_item_interactions)
    if table.empty:
        raise DataError(
            "split: no interactions left after filtering (split.rating_threshold, "
            "split.min_user_interactions, split.min_item_interactions)"
        )
    table, user_index, item_index = remap_ids(table)
    columns = ["user", "item", "timestamp"]
    method = config.method
    if method == "leave_one_out":
        parts = _leave_one_out(table)
    elif method == "temporal":
        parts = _temporal(table, config.test_fraction, config.validation_fraction)
    elif method == "random":
        parts = _random(table, config.test_fraction, config.validation_fraction, config.seed)
    else:
        parts = _given(table)
    train, validation, test = (part[columns].reset_index(drop=True) for part in parts)
    for name, part in (("train", train), ("test", test)):
        if part.empty:
            raise DataError(f"split: the {name} set is empty with split.method={method!r}")
    return SplitData(train, validation, test, user_index, item_index, duplicates)


def dataset_statistics(table: pd.DataFrame, split: SplitData) -> dict[str, Any]:
    """Figures the report prints about the data and the split."""
    n_train = len(split.train)
    return {
        "interactions_raw": len(table),
        "duplicates_dropped": split.duplicates_dropped,
        "users": split.n_users,
        "items": split.n_items,
        "train_interactions": n_train,
        "validation_interactions": len(split.validation),
        "test_interactions": len(split.test),
        "test_users": int(split.test["user"].nunique()),
        "density": round(
            (n_train + len(split.validation) + len(split.test))
            / max(1, split.n_users * split.n_items),
            6,
        ),
    }


@dataclass(frozen=True)
class Split(IdMaps):
    """One data set split as every stage after the split reads it: train, validation and
    test in index space, the id maps back to the source, the data set statistics and the
    fingerprint a trained model carries (``neurec.provenance``).

    Stored by one catalog dataset (``neurec.datasets.SplitDataset``, a folder);
    what evaluation needs is derived from it once per loaded split (:attr:`evaluation`).
    """

    train: Interactions
    validation: Interactions
    test: Interactions
    user_index: pd.DataFrame  # columns: user (index), source_id
    item_index: pd.DataFrame  # columns: item (index), source_id
    statistics: dict[str, Any]  # dataset_statistics + the split settings, for the report
    fingerprint: str

    @classmethod
    def build(cls, interactions: pd.DataFrame, config: SplitConfig) -> Split:
        """Split the canonical table as ``config`` says (:func:`split_interactions`)."""
        tables = split_interactions(interactions, config)
        statistics = dataset_statistics(interactions, tables)
        statistics["split"] = dataclasses.asdict(config)
        train, validation, test = (
            Interactions.from_frame(t, tables.n_users, tables.n_items)
            for t in (tables.train, tables.validation, tables.test)
        )
        return cls(
            train,
            validation,
            test,
            tables.user_index,
            tables.item_index,
            statistics,
            split_fingerprint(
                tables.train, tables.validation, tables.user_index, tables.item_index
            ),
        )

    @cached_property
    def evaluation(self) -> EvaluationData:
        """History (train + validation) and test targets per user."""
        return EvaluationData.build(self.train, self.validation, self.test)

    def everything(self) -> Histories:
        """Train, validation and test per user, in time order: all a user is known to have."""
        return self.evaluation.history.append(self.evaluation.targets)

    def popularity(self) -> np.ndarray:
        """Training interactions per item: the cold-start ranking."""
        return self.train.item_counts()

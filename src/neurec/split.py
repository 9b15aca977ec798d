"""Filtering, id remapping and train/validation/test splits.

Leave-one-out, exactly: per user, sort by timestamp with ties kept in source-file order
(stable sort); the last interaction is the test item, the second-to-last the validation
item, the rest train. Models fit on train; validation drives early stopping and model
selection; at test time a user's history is train + validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from neurec.errors import ConfigError, DataError

METHODS = ("leave_one_out", "temporal", "random", "given")


@dataclass
class SplitData:
    """Index-space tables (user, item, timestamp) plus the id maps back to the source."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    user_index: pd.DataFrame  # columns: user (index), source_id
    item_index: pd.DataFrame  # columns: item (index), source_id

    @property
    def n_users(self) -> int:
        return len(self.user_index)

    @property
    def n_items(self) -> int:
        return len(self.item_index)


def _option(options: Mapping[str, Any], key: str, default: Any) -> Any:
    value = options.get(key, default)
    return default if value is None else value


def apply_rating_threshold(table: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Keep interactions rated at least ``threshold`` (every rating counts when None)."""
    if threshold is None:
        return table
    if "rating" not in table.columns:
        raise ConfigError(
            "parameter split.rating_threshold is set but the data has no 'rating' column"
        )
    return table[table["rating"] >= threshold]


def k_core(table: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """Iteratively drop users with < min_user and items with < min_item interactions."""
    while True:
        user_counts = table["user"].map(table["user"].value_counts())
        item_counts = table["item"].map(table["item"].value_counts())
        keep = (user_counts >= min_user) & (item_counts >= min_item)
        if keep.all():
            return table
        table = table[keep]


def remap_ids(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Map source ids to contiguous indices 0..n-1 (sorted by source id)."""
    users = np.sort(table["user"].unique())
    items = np.sort(table["item"].unique())
    out = table.copy()
    out["user"] = np.searchsorted(users, table["user"].to_numpy())
    out["item"] = np.searchsorted(items, table["item"].to_numpy())
    user_index = pd.DataFrame({"user": np.arange(len(users)), "source_id": users})
    item_index = pd.DataFrame({"item": np.arange(len(items)), "source_id": items})
    return out, user_index, item_index


def _leave_one_out(table: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    counts = table.groupby("user").size()
    too_few = counts[counts < 3]
    if len(too_few):
        raise DataError(
            f"split: {len(too_few)} user(s) have fewer than 3 interactions (e.g. user "
            f"index {int(too_few.index[0])} has {int(too_few.iloc[0])}); leave-one-out needs "
            "train, validation and test items: set split.min_user_interactions >= 3 to drop them"
        )
    ordered = table.sort_values(["user", "timestamp"], kind="stable")
    from_end = ordered.groupby("user").cumcount(ascending=False).to_numpy()
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
            "use a pre-split source such as data.source: ncf"
        )
    given_train = table[table["split"] == "train"].sort_values(["user", "timestamp"], kind="stable")
    from_end = given_train.groupby("user").cumcount(ascending=False).to_numpy()
    has_spare = given_train["user"].map(given_train["user"].value_counts()).to_numpy() >= 2
    is_validation = (from_end == 0) & has_spare
    return given_train[~is_validation], given_train[is_validation], table[table["split"] == "test"]


def split_interactions(table: pd.DataFrame, options: Mapping[str, Any]) -> SplitData:
    """Filter, remap and split the canonical table as the ``split`` parameters say."""
    method = _option(options, "method", "leave_one_out")
    if method not in METHODS:
        raise ConfigError(f"parameter split.method: unknown {method!r}; expected one of {METHODS}")
    test_fraction = float(_option(options, "test_fraction", 0.2))
    validation_fraction = float(_option(options, "validation_fraction", 0.1))
    if not (0 < test_fraction < 1 and 0 <= validation_fraction < 1 - test_fraction):
        raise ConfigError(
            "parameters split.test_fraction / split.validation_fraction: need "
            f"0 < test_fraction < 1 and 0 <= validation_fraction < 1 - test_fraction, got "
            f"{test_fraction} / {validation_fraction}"
        )

    table = apply_rating_threshold(table, options.get("rating_threshold"))
    table = k_core(
        table,
        int(_option(options, "min_user_interactions", 0)),
        int(_option(options, "min_item_interactions", 0)),
    )
    if table.empty:
        raise DataError(
            "split: no interactions left after filtering (split.rating_threshold, "
            "split.min_user_interactions, split.min_item_interactions)"
        )
    table, user_index, item_index = remap_ids(table)
    columns = ["user", "item", "timestamp"]
    if method == "leave_one_out":
        parts = _leave_one_out(table)
    elif method == "temporal":
        parts = _temporal(table, test_fraction, validation_fraction)
    elif method == "random":
        parts = _random(table, test_fraction, validation_fraction, int(_option(options, "seed", 0)))
    else:
        parts = _given(table)
    train, validation, test = (part[columns].reset_index(drop=True) for part in parts)
    for name, part in (("train", train), ("test", test)):
        if part.empty:
            raise DataError(f"split: the {name} set is empty with split.method={method!r}")
    return SplitData(train, validation, test, user_index, item_index)


def dataset_statistics(table: pd.DataFrame, split: SplitData) -> dict[str, Any]:
    """Figures the report prints about the data and the split."""
    n_train = len(split.train)
    return {
        "interactions_raw": len(table),
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

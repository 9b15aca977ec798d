"""The canonical-table check every source's output passes (tables without lines: rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurec.errors import DataError
from neurec.interactions import validate_interactions
from neurec.sources import load_source


def _table(**columns):
    base = {"user": [1, 2, 3], "item": [4, 5, 6], "timestamp": [7, 8, 9]}
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"timestamp": [7, -8, 9]},
            "my table: row 2: column 'timestamp' is -8; expected a non-negative value",
        ),
        (
            {"user": [1.0, 2.0, -3.0]},
            "my table: row 3: column 'user' is -3.0; expected a non-negative value",
        ),
        (
            {"item": [True, False, True]},
            "my table: row 1: column 'item' must be numeric; it holds True",
        ),
        (
            {"item": [4.0, 1e20, 6.0]},
            "my table: row 2: column 'item' is 1e+20; too large for an exact",
        ),
        (
            {"item": np.array([4, 2**64 - 1, 6], dtype=np.uint64)},
            "my table: row 2: column 'item' is 18446744073709551615; too large",
        ),
        (
            {"timestamp": [7.0, 8.0, np.inf]},
            "my table: row 3: column 'timestamp' must hold integers",
        ),
        ({"user": [1, None, 3]}, "my table: row 2: column 'user' has missing values"),
    ],
    ids=[
        "negative",
        "negative-float",
        "boolean",
        "float-overflow",
        "uint64",
        "infinite",
        "missing",
    ],
)
def test_bad_values_name_their_row_1_based(columns, message):
    with pytest.raises(DataError) as error:
        validate_interactions(_table(**columns), "my table")
    assert str(error.value).startswith(message)


def test_a_locator_names_the_place_of_the_first_offender_only():
    asked = []

    def locate(row):
        asked.append(row)
        return f"f.txt: line {row + 10}"

    with pytest.raises(DataError, match=r"^f\.txt: line 11: column 'user' is -2"):
        validate_interactions(_table(user=[1, -2, -3]), "f.txt", locate)
    assert asked == [1]


def test_integral_floats_and_zero_are_accepted():
    table = validate_interactions(_table(user=[0.0, 1.0, 2.0], timestamp=[0, 0, 1]), "t")
    assert table["user"].tolist() == [0, 1, 2] and table["user"].dtype == "int64"


def test_the_synthetic_source_passes():
    table = load_source(
        {
            "source": "synthetic",
            "synthetic": {"n_users": 20, "n_items": 40, "mean_length": 10, "min_length": 5},
        }
    ).interactions
    assert (table[["user", "item", "timestamp"]].to_numpy() >= 0).all()

"""The NCF authors' pre-split files (He et al., WWW 2017): ``<prefix>.train.rating``,
``<prefix>.test.rating`` and ``<prefix>.test.negative``.

The test negatives are kept exactly as given, duplicates and the occasional held-out
positive included, because reproducing the paper's numbers means ranking the very
candidate lists the authors ranked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurec.errors import DataError
from neurec.sources import SourceData
from neurec.sources.tabular import (
    line_locator,
    read_delimited,
    require_text_file,
    source_options,
    source_path,
)

_NAMES = ("user", "item", "rating", "timestamp")
_HEAD = re.compile(r"\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)(.*)")


def load(options: Mapping[str, Any]) -> SourceData:
    """Train and test ratings (with a ``split`` column) and the given test candidates."""
    source_options(options, allowed=())
    prefix = source_path(options)
    hint = (
        f" (data.path {str(prefix)!r} is the prefix of the NCF files <prefix>.train.rating, "
        "<prefix>.test.rating and <prefix>.test.negative)"
    )
    train_path, test_path, negatives_path = (
        require_text_file(Path(f"{prefix}.{suffix}"), hint)
        for suffix in ("train.rating", "test.rating", "test.negative")
    )
    train = read_delimited(train_path, "\t", _NAMES)
    test = read_delimited(test_path, "\t", _NAMES)
    interactions = pd.concat(
        [train.assign(split="train"), test.assign(split="test")], ignore_index=True
    )
    candidates = read_negatives(negatives_path, test, test_path)
    train_lines, test_lines = line_locator(train_path), line_locator(test_path)

    def locate(row: int) -> str:
        return train_lines(row) if row < len(train) else test_lines(row - len(train))

    return SourceData(interactions=interactions, test_candidates=candidates, locate=locate)


def read_negatives(path: Path, test: pd.DataFrame, test_path: Path) -> pd.DataFrame:
    """``(user,item)<TAB>neg1<TAB>neg2...`` lines as (user, item) candidate rows, in order.

    Line i must name the same (user, item) as row i of the test ratings: a shifted or
    re-sorted file would pair users with someone else's negatives without any error.
    """
    positives = test[["user", "item"]].to_numpy()
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = len(users)
            user, item, negatives = _parse(path, number, line)
            if row >= len(positives):
                raise DataError(
                    f"{path}: line {number}: more lines than {test_path} has ratings "
                    f"({len(positives)})"
                )
            if (user, item) != tuple(positives[row]):
                raise DataError(
                    f"{path}: line {number} is for (user {user}, item {item}) but rating "
                    f"{row + 1} of {test_path} is (user {positives[row][0]}, item "
                    f"{positives[row][1]}); both files must list the same pairs in order"
                )
            users.append(np.full(len(negatives), user, dtype=np.int64))
            items.append(negatives)
    if len(users) < len(positives):
        raise DataError(
            f"{path}: {len(users)} line(s) of negatives but {test_path} has "
            f"{len(positives)} ratings; each needs its line"
        )
    return pd.DataFrame({"user": np.concatenate(users), "item": np.concatenate(items)})


def _parse(path: Path, number: int, line: str) -> tuple[int, int, np.ndarray]:
    match = _HEAD.fullmatch(line.rstrip("\r\n"))
    if match is None:
        raise DataError(
            f"{path}: line {number}: expected '(user,item)' then tab-separated negative "
            f"item ids, found {line[:60]!r}"
        )
    fields = match.group(3).split()
    bad = next((field for field in fields if not field.isdigit()), None)
    if bad is not None:
        raise DataError(f"{path}: line {number}: negative item ids must be integers, found {bad!r}")
    if not fields:
        raise DataError(f"{path}: line {number}: lists no negative items")
    negatives = np.array(fields, dtype=np.int64)
    return int(match.group(1)), int(match.group(2)), negatives

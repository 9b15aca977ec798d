"""The gSASRec authors' split of the SASRec/BERT4Rec ML-1M sequences (Petrov & Macdonald,
RecSys 2023): ``<prefix>_train_input.txt``, ``<prefix>_val_input.txt``,
``<prefix>_val_output.txt`` and ``<prefix>_test_output.txt``, one space-separated line of
item ids per user (line ``u`` is user ``u``; validation lines are a sample of the users).

For user ``u`` with sequence ``seq`` the files hold ``train = seq[:-2]`` (``seq[:-3]`` for
the validation users), ``val_input = seq[:-2]``, ``val_output = seq[-2]`` and
``test_output = seq[-1]``; a validation line is recognised by its items: the user's train
line plus one. Without the test input ``seq[:-1]``, ``seq[-2]`` is known for the
validation users only, so:

* the validation users keep ``seq[:-1]`` as training rows and ``seq[-1]`` as their test
  item: with ``split.method: given`` (validation = each user's last training row) that is
  leave-one-out, exactly;
* every other user keeps ``train`` and no test item (``seq[-1]`` does not follow
  ``train``; ranking it after ``train`` would be another task). Such a user still trains
  and validates (on the last item of ``train``).

Test figures are hence over the validation users only (512 of 6,040 users in the authors'
ML-1M files), a sample of the published full-data figures' users.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurec.errors import DataError
from neurec.sources import SourceData
from neurec.sources.tabular import require_text_file, source_options, source_path

PARTS = ("train_input", "val_input", "val_output", "test_output")


def load(options: Mapping[str, Any]) -> SourceData:
    """Training rows of every user and test rows of the validation users (``split``)."""
    source_options(options, allowed=())
    prefix = source_path(options)
    hint = (
        f" (data.path {str(prefix)!r} is the prefix of the gSASRec split files "
        + ", ".join(f"<prefix>_{part}.txt" for part in PARTS)
        + ")"
    )
    paths = {part: require_text_file(Path(f"{prefix}_{part}.txt"), hint) for part in PARTS}
    train, val_input, val_output, test_output = (read_lines(paths[part]) for part in PARTS)
    for part, lines in (("val_output", val_output), ("test_output", test_output)):
        single = next((i for i, line in enumerate(lines) if len(line) != 1), None)
        if single is not None:
            raise DataError(
                f"{paths[part]}: line {single + 1}: expected one item id, "
                f"found {len(lines[single])}"
            )
    if len(val_output) != len(val_input):
        raise DataError(
            f"{paths['val_output']}: {len(val_output)} line(s) but {paths['val_input']} has "
            f"{len(val_input)}; each validation input needs its output"
        )
    if len(test_output) != len(train):
        raise DataError(
            f"{paths['test_output']}: {len(test_output)} line(s) but {paths['train_input']} "
            f"has {len(train)} users; each user needs a test item"
        )
    known = validation_users(train, val_input, paths)
    sequences = list(train)
    for line, user in enumerate(known):
        sequences[user] = (*val_input[line], *val_output[line])
    test = [test_output[user] for user in known]
    return SourceData(
        interactions=pd.concat(
            [
                rows(np.arange(1, len(sequences) + 1), sequences, "train"),
                rows(np.array(known) + 1, test, "test"),
            ],
            ignore_index=True,
        )
    )


def read_lines(path: Path) -> list[tuple[int, ...]]:
    """Every line of ``path`` as a tuple of integer ids (blank lines included)."""
    lines = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            bad = next((field for field in fields if not field.isdigit()), None)
            if bad is not None:
                raise DataError(f"{path}: line {number}: item ids must be integers, found {bad!r}")
            lines.append(tuple(map(int, fields)))
    return lines


def validation_users(
    train: list[tuple[int, ...]], val_input: list[tuple[int, ...]], paths: Mapping[str, Path]
) -> list[int]:
    """The 0-based user of each validation line: the one whose train line is that line
    without its last item."""
    users_of: dict[tuple[int, ...], list[int]] = {}
    for user, sequence in enumerate(train):
        users_of.setdefault(sequence, []).append(user)
    users = []
    for number, line in enumerate(val_input, start=1):
        matches = users_of.get(line[:-1], [])
        if len(matches) != 1:
            found = "no" if not matches else f"{len(matches)} (lines {[u + 1 for u in matches]})"
            raise DataError(
                f"{paths['val_input']}: line {number}: expected exactly one line of "
                f"{paths['train_input']} equal to it without its last item, found {found}"
            )
        users.append(matches[0])
    return users


def rows(users: np.ndarray, sequences: list[tuple[int, ...]], split: str) -> pd.DataFrame:
    """The rows of ``users[i]``'s items ``sequences[i]``; the position in a sequence stands
    in for a timestamp."""
    lengths = np.array([len(items) for items in sequences], dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pd.DataFrame(
        {
            "user": np.repeat(users, lengths),
            "item": np.fromiter((i for items in sequences for i in items), np.int64, lengths.sum()),
            "timestamp": np.arange(lengths.sum(), dtype=np.int64) - starts,
            "split": split,
        }
    )

"""The gSASRec authors' split of the ML-1M sequences (``data.source: gsasrec_split``)."""

from __future__ import annotations

import numpy as np
import pytest

from neurec import workflow
from neurec.errors import DataError
from neurec.sources import load_source

# three users' whole sequences; user 2 is the one validation user
SEQUENCES = {1: [5, 6, 7, 8, 9], 2: [3, 4, 5, 6, 7, 8], 3: [9, 8, 7, 6]}


def write_split(folder, validation_users=(2,), **replace):
    """The four files as the authors write them, for ``SEQUENCES``."""
    parts = {
        "train_input": [s[:-3] if u in validation_users else s[:-2] for u, s in SEQUENCES.items()],
        "val_input": [SEQUENCES[u][:-2] for u in validation_users],
        "val_output": [SEQUENCES[u][-2:-1] for u in validation_users],
        "test_output": [s[-1:] for s in SEQUENCES.values()],
    }
    for part, lines in parts.items():
        text = replace.get(part, "".join(" ".join(map(str, line)) + "\n" for line in lines))
        (folder / f"ml1m_{part}.txt").write_text(text)
    return folder / "ml1m"


def _load(prefix):
    return load_source({"source": "gsasrec_split", "path": str(prefix)}).interactions


def test_validation_users_are_tested_leave_one_out_and_the_others_only_train(tmp_path):
    table = _load(write_split(tmp_path))
    train = table[table["split"] == "train"]
    assert train[train["user"] == 2]["item"].tolist() == SEQUENCES[2][:-1]  # seq[:-1] known
    assert train[train["user"] == 1]["item"].tolist() == SEQUENCES[1][:-2]
    assert table[table["split"] == "test"][["user", "item"]].values.tolist() == [[2, 8]]
    split = workflow.split(table, {"method": "given"})
    user = split.user_index["source_id"].tolist().index(2)
    items = split.item_index.sort_values("item")["source_id"].to_numpy()
    assert items[split.validation.histories.of(user)].tolist() == [SEQUENCES[2][-2]]
    assert items[split.train.histories.of(user)].tolist() == SEQUENCES[2][:-2]
    assert items[split.test.histories.of(user)].tolist() == [SEQUENCES[2][-1]]
    assert np.count_nonzero(split.test.histories.lengths()) == 1


@pytest.mark.parametrize(
    ("replace", "fragments"),
    [
        ({"val_input": "9 9\n"}, ["ml1m_val_input.txt: line 1", "found no"]),
        ({"val_output": "7 8\n"}, ["ml1m_val_output.txt: line 1", "one item id, found 2"]),
        ({"val_output": "7\n8\n"}, ["2 line(s)", "ml1m_val_input.txt has 1"]),
        ({"test_output": "9\n8\n"}, ["ml1m_test_output.txt: 2 line(s)", "has 3 users"]),
        ({"train_input": "5 6 7\n3 x\n9 8\n"}, ["ml1m_train_input.txt: line 2", "'x'"]),
    ],
    ids=["unmatched-validation", "two-outputs", "output-count", "test-count", "non-integer"],
)
def test_inconsistent_files_are_data_errors_naming_the_file(tmp_path, replace, fragments):
    with pytest.raises(DataError) as error:
        _load(write_split(tmp_path, **replace))
    for fragment in fragments:
        assert fragment in str(error.value)


def test_a_missing_file_names_the_prefix(tmp_path):
    prefix = write_split(tmp_path)
    (tmp_path / "ml1m_val_output.txt").unlink()
    with pytest.raises(DataError, match="prefix of the gSASRec split files"):
        _load(prefix)


def test_the_authors_ml1m_files_give_their_users_and_items(shared_data):
    prefix = shared_data / "seq" / "gsasrec_ml1m"
    table = _load(prefix)
    split = workflow.split(table, {"method": "given"})
    assert (split.n_users, split.n_items) == (6040, 3416)
    assert len(split.test) == 512 and len(split.validation) == 6040
    # every interaction but the 5,528 unknown seq[-2] (no test input) and their seq[-1]
    assert len(split.train) + len(split.validation) + len(split.test) == 999_611 - 2 * 5_528

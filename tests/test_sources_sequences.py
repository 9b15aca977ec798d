"""The SASRec/BERT4Rec ``user item`` sequence files."""

from __future__ import annotations

import bz2

import pytest

from neurec.errors import ConfigError, DataError
from neurec.sources import load_source


def _load(path, **extra):
    return load_source({"source": "sequences", "path": str(path), **extra})


def test_timestamps_are_each_users_line_rank_in_file_order(tmp_path):
    path = tmp_path / "ml-1m.txt"
    path.write_text("1 10\n1 11\n2 10\n1 12\n\n2  13\n3\t7\n")
    table = _load(path).interactions
    assert table["user"].tolist() == [1, 1, 2, 1, 2, 3]
    assert table["item"].tolist() == [10, 11, 10, 12, 13, 7]
    assert table["timestamp"].tolist() == [0, 1, 0, 2, 1, 0]
    assert table["timestamp"].dtype == "int64"
    assert "rating" not in table.columns


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("1 10\n1 11 5\n", ["line 2", "expected 2 fields", "whitespace"]),
        ("1 10\n1\n", ["line 2", "found 1"]),
        ("1 10\nu2 11\n", ["line 2", "user must be a number", "'u2'"]),
        ("1 10\n1 1.5\n", ["column 'item'", "integers"]),
        ("", ["empty"]),
    ],
    ids=["extra-field", "missing-field", "non-numeric", "non-integer", "empty"],
)
def test_malformed_files_are_data_errors(tmp_path, text, fragments):
    path = tmp_path / "seq.txt"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        _load(path)
    assert str(path) in str(error.value)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize(("text", "found"), [("1,10\n1,11\n", "','"), ("1::10\n", "'::'")])
def test_a_file_with_another_separator_names_it(tmp_path, text, found):
    path = tmp_path / "seq.txt"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        _load(path)
    assert str(error.value).startswith(
        f"{path}: expected fields separated by whitespace, found {found}"
    )


def test_a_compressed_file_is_named_not_parsed(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_bytes(bz2.compress(b"1 10\n1 11\n"))
    with pytest.raises(DataError) as error:
        _load(path)
    assert str(error.value) == f"{path} is a bz2 archive, not a text file: unpack it first"


def test_a_negative_id_names_its_line(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_text("1 10\n\n1 11\n-2 12\n")
    with pytest.raises(DataError) as error:
        _load(path)
    assert str(error.value) == f"{path}: line 4: column 'user' is -2; expected a non-negative value"


def test_missing_file_and_parameters(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        _load(tmp_path / "absent.txt")
    with pytest.raises(ConfigError, match=r"parameter data\.path"):
        load_source({"source": "sequences"})
    with pytest.raises(ConfigError, match=r"data\.sequences\.sep"):
        _load(tmp_path / "absent.txt", sequences={"sep": " "})

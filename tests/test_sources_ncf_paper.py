"""The NCF authors' pre-split files: train/test ratings and the given test negatives."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from neurec.errors import ConfigError, DataError
from neurec.sources import load_source
from tests.conftest import shared_data_dir

TRAIN = "0\t5\t4\t100\n0\t6\t3\t101\n1\t5\t5\t102\n"
TEST = "0\t7\t5\t200\n1\t8\t2\t201\n"
NEGATIVES = "(0,7)\t1\t2\t2\t7\n(1,8)\t3\t4\t5\t6\n"


def _write(folder: Path, train=TRAIN, test=TEST, negatives=NEGATIVES) -> Path:
    prefix = folder / "toy"
    for suffix, text in (("train.rating", train), ("test.rating", test)):
        if text is not None:
            Path(f"{prefix}.{suffix}").write_text(text)
    if negatives is not None:
        Path(f"{prefix}.test.negative").write_text(negatives)
    return prefix


def _load(prefix):
    return load_source({"source": "ncf_paper", "path": str(prefix)})


def test_reads_both_splits_and_keeps_negatives_exactly_as_given(tmp_path):
    data = _load(_write(tmp_path))
    table = data.interactions
    assert table["split"].tolist() == ["train"] * 3 + ["test"] * 2
    assert table["user"].tolist() == [0, 0, 1, 0, 1]
    assert table["item"].tolist() == [5, 6, 5, 7, 8]
    assert table["timestamp"].tolist() == [100, 101, 102, 200, 201]
    assert table["rating"].dtype == "float32"
    # the duplicate 2 and the held-out positive 7 both stay: the authors rank these lists
    candidates = data.test_candidates
    assert candidates["user"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert candidates["item"].tolist() == [1, 2, 2, 7, 3, 4, 5, 6]
    assert str(candidates["item"].dtype) == "int64"


def test_trailing_whitespace_and_blank_lines_are_tolerated(tmp_path):
    prefix = _write(tmp_path, negatives="(0,7)\t1\t2\t\n\n(1,8) 3 4\r\n")
    assert _load(prefix).test_candidates["item"].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("negatives", "fragments"),
    [
        ("(1,8)\t1\n(0,7)\t2\n", ["line 1 is for (user 1, item 8)", "(user 0, item 7)"]),
        ("(0,7)\t1\n(1,9)\t2\n", ["line 2", "(user 1, item 8)", "same pairs in order"]),
        ("(0,7)\t1\n", ["1 line(s) of negatives", "has 2 ratings"]),
        ("(0,7)\t1\n(1,8)\t2\n(2,9)\t3\n", ["line 3", "more lines than"]),
        ("0,7\t1\n", ["line 1", "'(user,item)'"]),
        ("(0,7)\t1\tx\n", ["line 1", "must be integers", "'x'"]),
        ("(0,7)\t1\n(1,8)\n", ["line 2", "no negative items"]),
        ("", ["0 line(s)"]),
    ],
    ids=["swapped", "wrong-item", "too-few", "too-many", "head", "word", "none", "empty"],
)
def test_bad_negative_files_name_the_line(tmp_path, negatives, fragments):
    prefix = _write(tmp_path, negatives=negatives)
    with pytest.raises(DataError) as error:
        _load(prefix)
    message = str(error.value)
    assert message.startswith(f"{prefix}.test.negative")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("missing", ["train.rating", "test.rating", "test.negative"])
def test_missing_file_names_it_and_explains_the_prefix(tmp_path, missing):
    prefix = _write(tmp_path)
    Path(f"{prefix}.{missing}").unlink()
    with pytest.raises(DataError) as error:
        _load(prefix)
    assert f"{prefix}.{missing}: file not found" in str(error.value)
    assert "prefix" in str(error.value)


def test_malformed_rating_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match=r"toy\.train\.rating: line 2: expected 4 fields"):
        _load(_write(tmp_path, train="0\t5\t4\t100\n0\t6\t3\n"))
    with pytest.raises(DataError, match=r"toy\.test\.rating: the file is empty"):
        _load(_write(tmp_path, test=""))


def test_a_rating_file_with_another_separator_names_both(tmp_path):
    prefix = _write(tmp_path, train=TRAIN.replace("\t", ","))
    with pytest.raises(DataError) as error:
        _load(prefix)
    assert str(error.value).startswith(
        f"{prefix}.train.rating: expected fields separated by tabs, found ','"
    )


@pytest.mark.parametrize("suffix", ["train.rating", "test.rating", "test.negative"])
def test_a_compressed_file_is_named_not_parsed(tmp_path, suffix):
    prefix = _write(tmp_path)
    path = Path(f"{prefix}.{suffix}")
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError) as error:
        _load(prefix)
    assert str(error.value) == f"{path} is a gzip archive, not a text file: unpack it first"


@pytest.mark.parametrize(
    ("train", "test", "where"),
    [
        ("0\t5\t4\t100\n0\t-6\t3\t101\n", TEST, "train.rating: line 2: column 'item' is -6"),
        (TRAIN, "0\t7\t5\t200\n\n1\t8\t2\t-201\n", "test.rating: line 3: column 'timestamp'"),
    ],
    ids=["train", "test"],
)
def test_a_negative_value_names_its_file_and_line(tmp_path, train, test, where):
    prefix = _write(tmp_path, train=train, test=test)
    with pytest.raises(DataError, match=re.escape(f"{prefix}.{where}")):
        _load(prefix)


def test_parameters(tmp_path):
    with pytest.raises(ConfigError, match=r"parameter data\.path"):
        load_source({"source": "ncf_paper"})
    with pytest.raises(ConfigError, match=r"data\.source: 'ncf' is now called 'ncf_paper'"):
        load_source({"source": "ncf", "path": "x"})
    with pytest.raises(ConfigError, match=r"data\.ncf_paper\.variant"):
        load_source({"source": "ncf_paper", "path": "x", "ncf_paper": {"variant": "1m"}})


def test_real_ml_1m_test_files(tmp_path):
    shared = shared_data_dir() / "ncf"
    if not (shared / "ml-1m.test.negative").is_file():
        pytest.skip(f"reference data not found at {shared} (set NEUREC_SHARED_DATA)")
    prefix = tmp_path / "ml-1m"
    for suffix in ("test.rating", "test.negative"):  # linked, not copied: licence
        Path(f"{prefix}.{suffix}").symlink_to(shared / f"ml-1m.{suffix}")
    Path(f"{prefix}.train.rating").write_text("0\t1\t5\t978300760\n1\t2\t3\t978300761\n")
    data = _load(prefix)
    test = data.interactions[data.interactions["split"] == "test"]
    assert len(test) == 6040 and test["user"].tolist() == list(range(6040))
    candidates = data.test_candidates
    assert len(candidates) == 6040 * 99
    assert (candidates.groupby("user").size() == 99).all()
    positives = candidates.merge(test[["user", "item"]], on=["user", "item"])
    assert positives["user"].nunique() == 156  # lines listing the held-out positive

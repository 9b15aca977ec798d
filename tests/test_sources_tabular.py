"""The csv/parquet sources and the shared delimited-text reader."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import zipfile

import pandas as pd
import pytest

from neurec.errors import ConfigError, DataError
from neurec.sources import load_source
from neurec.sources.tabular import read_delimited

SHOP_CSV = (
    "customer_id,sku,ts,stars,note\n"
    "7,100,2020-01-01T00:00:00Z,4.5,x\n"
    "3,101,2020-01-01 00:00:10,3,y\n"
    "7,102,2020-01-02T01:00:00+01:00,5,z\n"
)
SHOP_COLUMNS = {"user": "customer_id", "item": "sku", "timestamp": "ts", "rating": "stars"}


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def _csv(path, **settings):
    return {"source": "csv", "path": str(path), "csv": settings}


def test_csv_maps_columns_and_converts_iso_timestamps(tmp_path):
    path = _write(tmp_path, "shop.csv", SHOP_CSV)
    table = load_source(_csv(path, columns=SHOP_COLUMNS)).interactions
    assert table["user"].tolist() == [7, 3, 7]  # file order kept
    assert table["item"].tolist() == [100, 101, 102]
    assert table["timestamp"].tolist() == [1577836800, 1577836810, 1577923200]
    assert table["rating"].tolist() == [4.5, 3.0, 5.0]
    assert table["timestamp"].dtype == "int64"
    assert "note" not in table.columns


def test_csv_with_canonical_names_needs_no_mapping_and_rating_is_optional(tmp_path):
    path = _write(tmp_path, "plain.csv", "user;item;timestamp\n1;2;30\n1;3;40\n")
    table = load_source(_csv(path, sep=";")).interactions
    assert list(table.columns) == ["user", "item", "timestamp"]
    assert table["timestamp"].tolist() == [30, 40]


def test_numeric_timestamp_strings_stay_epoch_seconds(tmp_path):
    path = _write(tmp_path, "t.csv", 'user,item,timestamp\n1,2,"1000"\n1,3,"2000"\n')
    assert load_source(_csv(path)).interactions["timestamp"].tolist() == [1000, 2000]


def test_parquet_datetimes_become_epoch_seconds(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame(
        {
            "u": [1, 2],
            "i": [5, 6],
            "when": pd.to_datetime(["1970-01-01 00:01:00", "2020-01-01 00:00:00"]),
            "zoned": pd.to_datetime(["2020-01-01 01:00", "2020-01-01 02:00"]).tz_localize(
                "Europe/Paris"
            ),
        }
    ).to_parquet(path)
    naive = load_source(
        {
            "source": "parquet",
            "path": str(path),
            "parquet": {"columns": {"user": "u", "item": "i", "timestamp": "when"}},
        }
    ).interactions
    assert naive["timestamp"].tolist() == [60, 1577836800]
    zoned = load_source(
        {
            "source": "parquet",
            "path": str(path),
            "parquet": {"columns": {"user": "u", "item": "i", "timestamp": "zoned"}},
        }
    ).interactions
    assert zoned["timestamp"].tolist() == [1577836800, 1577840400]


def test_parquet_numeric_columns_pass_through(tmp_path):
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"user": [1], "item": [2], "timestamp": [3], "rating": [4.0]}).to_parquet(path)
    table = load_source({"source": "parquet", "path": str(path)}).interactions
    assert table.iloc[0].tolist() == [1, 2, 3, 4.0]


@pytest.mark.parametrize(
    ("text", "columns", "fragments"),
    [
        (SHOP_CSV, {**SHOP_COLUMNS, "timestamp": "time"}, ["'time'", "timestamp", "'ts'"]),
        ("user,item,ts\n1,2,3\n", None, ["no column 'timestamp'", "data.csv.columns"]),
        ("user,item,timestamp\nC1,2,3\n", None, ["line 2: column 'user'", "'C1'"]),
        ("user,item,timestamp\n1,2,3\n1,2,yesterday\n", None, ["'timestamp'", "'yesterday'"]),
        ("user,item,timestamp\n1,,3\n", None, ["column 'item'", "missing value"]),
        ("user,item,timestamp,rating\n1,2,3,good\n", None, ["'rating'", "'good'"]),
        ("user,item,timestamp\n", None, ["columns but no rows"]),
        ("", None, ["empty"]),
        ("user,item,timestamp\n1,2,3\n1,2,3,4\n", None, ["not readable as CSV", "line 3"]),
    ],
    ids=[
        "mapped-column-absent",
        "canonical-column-absent",
        "non-numeric-id",
        "unparseable-timestamp",
        "missing-value",
        "non-numeric-rating",
        "header-only",
        "empty-file",
        "ragged-line",
    ],
)
def test_csv_data_errors_name_file_and_column(tmp_path, text, columns, fragments):
    path = _write(tmp_path, "bad.csv", text)
    settings = {} if columns is None else {"columns": columns}
    with pytest.raises(DataError) as error:
        load_source(_csv(path, **settings))
    assert str(path) in str(error.value)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize(
    ("text", "sep", "expected", "found"),
    [
        ("user;item;timestamp\n1;2;3\n", None, "','", "';'"),
        ("user\titem\ttimestamp\n1\t2\t3\n", None, "','", "tabs"),
        ("user,item,timestamp\n1,2,3\n", ";", "';'", "','"),
    ],
)
def test_a_header_that_the_separator_does_not_split_names_the_one_it_holds(
    tmp_path, text, sep, expected, found
):
    path = _write(tmp_path, "shop.csv", text)
    settings = {} if sep is None else {"sep": sep}
    with pytest.raises(DataError) as error:
        load_source(_csv(path, **settings))
    assert str(error.value).startswith(
        f"{path}: expected fields separated by {expected}, found {found} (header: "
    )


def _one_file_zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("shop.csv", data)
    return buffer.getvalue()


COMPRESSORS = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zip": _one_file_zip,
}


@pytest.mark.parametrize("name", ["shop.csv", "shop.csv.gz"])
@pytest.mark.parametrize("kind", COMPRESSORS)
def test_a_compressed_csv_is_read_whatever_its_name(tmp_path, kind, name):
    path = tmp_path / name
    path.write_bytes(COMPRESSORS[kind](SHOP_CSV.encode()))
    plain = load_source(_csv(_write(tmp_path, "plain.csv", SHOP_CSV), columns=SHOP_COLUMNS))
    packed = load_source(_csv(path, columns=SHOP_COLUMNS))
    assert packed.interactions.equals(plain.interactions)
    path.write_bytes(COMPRESSORS[kind](b"user,item,timestamp\n1,2,3\n\n1,2,-3\n"))
    with pytest.raises(DataError, match=re.escape(f"{path}: line 4: column 'timestamp' is -3")):
        load_source(_csv(path))


def test_a_truncated_compressed_csv_is_a_data_error(tmp_path):
    path = tmp_path / "shop.csv.gz"
    path.write_bytes(gzip.compress(SHOP_CSV.encode() * 50)[:-30])
    with pytest.raises(DataError, match=re.escape(f"{path}: damaged gzip data")):
        load_source(_csv(path, columns=SHOP_COLUMNS))


def test_archives_the_csv_source_cannot_read_are_named(tmp_path):
    path = tmp_path / "shop.csv"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("a.csv", SHOP_CSV)
        bundle.writestr("b.csv", SHOP_CSV)
    with pytest.raises(DataError, match=re.escape(f"{path} is a zip archive of 2 files")):
        load_source(_csv(path))
    path.write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24))
    with pytest.raises(DataError) as error:
        load_source(_csv(path))
    assert str(error.value) == f"{path} is a 7z archive, not a text file: unpack it first"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("user,item,timestamp\n1,2,3\n-1,2,3\n", "line 3: column 'user' is -1"),
        (
            '\nuser,item,note,timestamp\n1,2,"two\nlines",3\n\n1,-7,x,4\n',
            "line 6: column 'item' is -7",
        ),
        (
            "user,item,ts\n1,2,1970-01-01T00:00:05Z\n1,2,1969-12-31T23:59:59Z\n",
            "line 3: column 'timestamp' is -1",
        ),
    ],
    ids=["plain", "blank-lines-and-quoted-newline", "iso-before-1970"],
)
def test_a_negative_id_or_timestamp_names_its_line(tmp_path, text, where):
    path = _write(tmp_path, "shop.csv", text)
    with pytest.raises(DataError) as error:
        load_source(_csv(path, columns={"timestamp": "ts"} if ",ts" in text else None))
    assert str(error.value) == f"{path}: {where}; expected a non-negative value"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "user,item,timestamp\nTrue,2,3\nFalse,2,3\n",
            "line 2: column 'user' must be numeric; it holds True",
        ),
        (
            "user,item,timestamp\n1,2,3\n1,2,1e20\n",
            "line 3: column 'timestamp' is 1e+20; too large",
        ),
        (
            "user,item,timestamp\n1,2,3\n1,18446744073709551615,3\n",
            "line 3: column 'item' is 18446744073709551615; too large",
        ),
    ],
    ids=["boolean", "float-overflow", "uint64"],
)
def test_values_pandas_would_coerce_silently_are_refused(tmp_path, text, fragment):
    path = _write(tmp_path, "shop.csv", text)
    with pytest.raises(DataError, match=re.escape(f"{path}: {fragment}")):
        load_source(_csv(path))


def test_a_negative_id_in_parquet_names_its_row(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame({"user": [1, 2, 3], "item": [4, -5, 6], "timestamp": [7, 8, 9]}).to_parquet(path)
    with pytest.raises(DataError) as error:
        load_source({"source": "parquet", "path": str(path)})
    assert str(error.value) == f"{path}: row 2: column 'item' is -5; expected a non-negative value"


def test_a_parquet_path_that_is_not_parquet_says_what_it_is(tmp_path):
    path = _write(tmp_path, "events.parquet", "user,item,timestamp\n1,2,3\n")
    with pytest.raises(DataError) as error:
        load_source({"source": "parquet", "path": str(path)})
    assert str(error.value).startswith(f"{path}: not a parquet file")
    assert "'user,item,timestamp'" in str(error.value) and "data.source: csv" in str(error.value)
    path.write_bytes(gzip.compress(b"user,item,timestamp\n1,2,3\n"))
    with pytest.raises(DataError) as error:
        load_source({"source": "parquet", "path": str(path)})
    assert str(error.value) == f"{path} is a gzip archive, not a parquet file: unpack it first"


def test_non_utf8_csv_is_a_data_error(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("user,item,timestamp,titl\xe9\n1,2,3,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_source(_csv(path))


def test_unreadable_parquet_is_a_data_error(tmp_path):
    path = tmp_path / "cut.parquet"
    pd.DataFrame({"user": [1], "item": [2], "timestamp": [3]}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:-20])  # starts like parquet, footer cut off
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_source({"source": "parquet", "path": str(path)})


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"source": "csv"}, "parameter data.path"),
        ({"source": "csv", "path": 3}, "parameter data.path"),
        ({"source": "csv", "path": "x.csv", "csv": ["sep"]}, "parameter data.csv"),
        ({"source": "csv", "path": "x.csv", "csv": {"sepp": ";"}}, "data.csv.sepp"),
        ({"source": "csv", "path": "x.csv", "csv": {"sep": ""}}, "data.csv.sep"),
    ],
)
def test_bad_parameters_are_config_errors(options, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_source(options)


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [
        ("user", "data.csv.columns"),
        ({"customer": "c"}, "data.csv.columns.customer"),
        ({"user": 5}, "data.csv.columns.user"),
    ],
)
def test_bad_column_mappings_are_config_errors(tmp_path, columns, fragment):
    path = _write(tmp_path, "ok.csv", "user,item,timestamp\n1,2,3\n")
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_source(_csv(path, columns=columns))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_source(_csv(tmp_path / "nowhere.csv"))


def test_read_delimited_skips_blank_lines_and_handles_multichar_separators(tmp_path):
    path = _write(tmp_path, "r.dat", "1::2::3\n\n4::5::6\r\n")
    table = read_delimited(path, "::", ("a", "b", "c"))
    assert table.to_numpy().tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("1\t2\t3\n4\t5\t6\t7\n", ["line 2", "expected 3 fields", "found 4"]),
        ("1\t2\t3\n\n4\t5\n", ["line 3", "found 2"]),
        ("1\t2\t3\n4\tfive\t6\n", ["line 2", "b must be a number", "'five'"]),
        ("1\t2\t3\n4\t\t6\n", ["line 2", "b must be a number", "''"]),
        ("a\tb\tc\n1\t2\t3\n", ["line 1", "a must be a number"]),
        ("1\t2\t3 4\n", ["line 1", "c must be a number"]),
        ("\n\n", ["empty"]),
    ],
    ids=["extra-field", "missing-field", "word", "empty-field", "header", "space", "blank"],
)
def test_read_delimited_names_the_bad_line(tmp_path, text, fragments):
    path = _write(tmp_path, "r.tsv", text)
    with pytest.raises(DataError) as error:
        read_delimited(path, "\t", ("a", "b", "c"))
    assert str(error.value).startswith(str(path))
    for fragment in fragments:
        assert fragment in str(error.value)


def test_read_delimited_rejects_binary_content(tmp_path):
    path = tmp_path / "blob.tsv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(DataError, match="line 1"):
        read_delimited(path, "\t", ("a", "b"))

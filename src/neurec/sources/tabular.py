"""The ``csv`` and ``parquet`` sources, and the file readers every file source shares.

Users point these sources at their own tables, so most failures are theirs to fix: each
error is a :class:`DataError` or :class:`ConfigError` that names the file, the line or
column and what was expected, never a parser traceback. Large files stay on pandas'
C parser; a file is only rescanned line by line once that parser has found a problem,
to say exactly where it is.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import math
import os
import zipfile
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from neurec.errors import ConfigError, DataError
from neurec.sources import SourceData

CANONICAL = ("user", "item", "timestamp", "rating")
_SEPARATOR_NAMES = {"\t": "tabs", " ": "spaces", None: "whitespace"}
# what a file's first line is checked for when it lacks the separator its format expects
_USUAL_SEPARATORS = ("::", "\t", ",", ";", "|", ":", " ")
# magic bytes at the start of archives and compressed files (bz2 and tar are tested apart)
_ARCHIVE_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"Rar!\x1a\x07", "rar"),
)
# compressed tables the csv source reads itself; the names are pandas' ``compression``
_CSV_COMPRESSIONS = ("gzip", "bz2", "xz", "zip")
_OPENERS: dict[str | None, Callable[..., IO[str]]] = {
    None: open,
    "gzip": gzip.open,
    "bz2": bz2.open,
    "xz": lzma.open,
}


def load(options: Mapping[str, Any]) -> SourceData:
    """Load a user's ``csv`` or ``parquet`` table; ``data.<csv|parquet>.columns`` maps names."""
    settings = source_options(options, allowed=("columns", "sep"))
    sep = settings.get("sep", ",")
    if not isinstance(sep, str) or not sep:
        raise ConfigError(f"parameter data.csv.sep: expected a non-empty string, got {sep!r}")
    path = require_file(source_path(options))
    return read_mapped(path, options.get("source"), settings.get("columns"), sep=sep)


def source_path(options: Mapping[str, Any]) -> Path:
    """The ``data.path`` parameter as a path (relative paths are from the working folder)."""
    value = options.get("path")
    if value is None or value == "":
        raise ConfigError(
            f"parameter data.path: missing; the {options.get('source')!r} source needs the "
            "path of its input"
        )
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(f"parameter data.path: expected a file path, got {value!r}")
    return Path(value).expanduser()


def source_options(options: Mapping[str, Any], allowed: Collection[str]) -> Mapping[str, Any]:
    """The ``data.<source>`` block (empty when absent); unknown keys are refused as typos."""
    settings = options.get("options")
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ConfigError(
            f"parameter data.{options.get('source')}: expected a mapping of settings, "
            f"got {settings!r}"
        )
    unknown = sorted(str(key) for key in settings if key not in allowed)
    if unknown:
        expected = f"expected some of {sorted(allowed)}" if allowed else "it takes none"
        raise ConfigError(
            f"parameter data.{options.get('source')}.{unknown[0]}: unknown setting for source "
            f"{options.get('source')!r}; {expected}"
        )
    return settings


def require_file(path: Path, hint: str = "") -> Path:
    """Fail early, naming the path, when it is not a readable file."""
    if not path.exists():
        raise DataError(f"{path}: file not found{hint}")
    if not path.is_file():
        raise DataError(f"{path}: is not a file{hint}")
    return path


def require_text_file(path: Path, hint: str = "") -> Path:
    """Like :func:`require_file`, and refuse archives and compressed files by their content."""
    kind = archive_kind(require_file(path, hint))
    if kind is not None:
        raise DataError(f"{path} is a {kind} archive, not a text file: unpack it first")
    return path


def archive_kind(path: Path) -> str | None:
    """The archive or compression format of ``path`` by its magic bytes; None for others."""
    try:
        with path.open("rb") as handle:
            head = handle.read(262)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        return "bz2"
    if head[257:262] == b"ustar":
        return "tar"
    return next((kind for magic, kind in _ARCHIVE_MAGIC if head.startswith(magic)), None)


def first_line(path: Path, encoding: str = "utf-8") -> tuple[int, str] | None:
    """The first non-blank line of a text file and its 1-based number; None when all blank."""
    with path.open(encoding=encoding, errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                return number, line.rstrip("\r\n")
    return None


def require_separator(path: Path, sep: str | None, line: str, where: str) -> None:
    """Refuse a file whose first line lacks ``sep`` (None: whitespace) but holds another
    usual separator: a file of another format, caught before its fields are misread.
    ``where`` names that line ("line 1", "header")."""
    holds = len(line.split()) > 1 if sep is None else sep in line
    found = next((usual for usual in _USUAL_SEPARATORS if usual in line.strip()), None)
    if not holds and found is not None:
        raise DataError(
            f"{path}: expected fields separated by {_describe(sep)}, found {_describe(found)} "
            f"({where}: {line[:80]!r})"
        )


def line_locator(
    path: Path,
    *,
    header: bool = False,
    sep: str = ",",
    encoding: str = "utf-8",
    compression: str | None = None,
) -> Callable[[int], str]:
    """``row -> "<path>: line N"``, where N is the row's 1-based line in the file, counting
    blank lines and the header (a CSV read with ``header``, whose quoted values may span
    lines). It rescans the file, so it is meant for the one row an error names."""

    def locate(row: int) -> str:
        number = _line_of_row(path, row, header, sep, encoding, compression)
        return f"{path}: line {number}" if number is not None else f"{path}: data row {row + 1}"

    return locate


def read_delimited(
    path: Path, sep: str | None, names: Sequence[str], encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read a headerless text file of numeric columns (``sep=None``: any whitespace).

    Multi-character separators (the ``::`` of MovieLens ``.dat`` files) would force
    pandas' slow Python parser, so they are turned into tabs first.
    """
    head = first_line(require_text_file(path), encoding)
    if head is not None:
        require_separator(path, sep, head[1], f"line {head[0]}")
    source: Path | io.BytesIO = path
    parser_sep = r"\s+" if sep is None else sep
    if sep is not None and len(sep) > 1:
        source = io.BytesIO(path.read_bytes().replace(sep.encode(encoding), b"\t"))
        parser_sep = "\t"
    expected = f"{len(names)} fields separated by {_describe(sep)} ({', '.join(names)})"
    try:
        table = pd.read_csv(
            source, sep=parser_sep, header=None, encoding=encoding, quoting=csv.QUOTE_NONE
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected lines of {expected}") from None
    except (pd.errors.ParserError, UnicodeDecodeError):
        table = None
    if table is None or not _all_numeric(table, len(names)):
        raise _locate_problem(path, sep, names, encoding, expected)
    table.columns = list(names)
    return table


def read_mapped(path: Path, kind: str, columns: Any, sep: str = ",") -> SourceData:
    """Read a csv/parquet table with a header into canonical columns.

    ``columns`` maps canonical names to the file's names; a canonical name left out is
    looked up under its own name, and ``rating`` is optional. A CSV is read whole because
    pandas ignores surplus fields on a line when asked for some columns only, and such a
    line (an unquoted separator inside a value) must fail rather than shift silently.
    A gzip, bz2, xz or one-file zip CSV is decompressed, whatever its name.
    """
    mapping = _column_mapping(columns, f"data.{kind}.columns")
    if kind == "csv":
        compression = _csv_compression(path)
        table = _read_csv(path, sep, compression)
        locate = line_locator(path, header=True, sep=sep, compression=compression)
        if len(table.columns) == 1:
            require_separator(path, sep, str(table.columns[0]), "header")
        wanted = _resolve(path, mapping, list(table.columns), f"data.{kind}.columns")
    else:
        _require_parquet(path)
        wanted = _resolve(path, mapping, _parquet_header(path), f"data.{kind}.columns")
        table = _read_parquet(path, list(dict.fromkeys(wanted.values())))

        def locate(row: int) -> str:
            return f"{path}: row {row + 1}"

    if table.empty:
        raise DataError(f"{path}: the table has columns but no rows")
    out = pd.DataFrame(index=range(len(table)))
    for canonical, name in wanted.items():
        values = table[name].reset_index(drop=True)
        if canonical == "timestamp":
            out[canonical] = epoch_seconds(values, f"column {name!r} (timestamp)", locate)
        else:
            out[canonical] = _numeric(values, f"column {name!r} ({canonical})", locate)
    return SourceData(interactions=out, locate=locate)


def _resolve(
    path: Path, mapping: Mapping[str, str], available: list[str], where: str
) -> dict[str, str]:
    """Canonical name -> the file's column, for each canonical column the table provides."""
    wanted = {}
    for canonical in CANONICAL:
        name = mapping.get(canonical, canonical)
        if name in available:
            wanted[canonical] = name
        elif canonical in mapping:
            raise DataError(
                f"{path}: no column {name!r}, which {where}.{canonical} names; "
                f"the file has columns {available}"
            )
        elif canonical != "rating":
            raise DataError(
                f"{path}: no column {canonical!r}; the file has columns {available}; "
                f"name the one to use with {where}.{canonical}"
            )
    return wanted


def epoch_seconds(values: pd.Series, what: str, locate: Callable[[int], str]) -> pd.Series:
    """Timestamps as int64 epoch seconds, from numbers, datetimes or ISO 8601 strings.

    Datetimes without a time zone are taken as UTC, so the result does not depend on
    the machine's zone. ``what`` names the column and ``locate`` a row, for errors.
    """
    _refuse_missing(values, what, locate)
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
    elif _is_number_dtype(values):
        return values
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().all():
            return numbers
        stamps = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
        if stamps.isna().any():
            neither = stamps.isna() & numbers.isna()
            row = int((neither if neither.any() else stamps.isna()).to_numpy().argmax())
            raise DataError(
                f"{locate(row)}: {what} holds {values.iloc[row]!r}; expected numbers (epoch "
                "seconds) or ISO 8601 date-times, not a mix"
            )
    return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("int64")


def _numeric(values: pd.Series, what: str, locate: Callable[[int], str]) -> pd.Series:
    _refuse_missing(values, what, locate)
    if _is_number_dtype(values):
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        row = int(numbers.isna().to_numpy().argmax())
        raise DataError(f"{locate(row)}: {what} holds {values.iloc[row]!r}; expected numbers")
    return numbers


def _refuse_missing(values: pd.Series, what: str, locate: Callable[[int], str]) -> None:
    if values.isna().any():
        row = int(values.isna().to_numpy().argmax())
        raise DataError(f"{locate(row)}: {what} has a missing value")


def _column_mapping(columns: Any, where: str) -> dict[str, str]:
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise ConfigError(
            f"parameter {where}: expected a mapping from canonical names "
            f"{list(CANONICAL)} to the file's column names, got {columns!r}"
        )
    for key, name in columns.items():
        if key not in CANONICAL:
            raise ConfigError(
                f"parameter {where}.{key}: unknown canonical column; "
                f"expected some of {list(CANONICAL)}"
            )
        if not isinstance(name, str) or not name:
            raise ConfigError(f"parameter {where}.{key}: expected a column name, got {name!r}")
    return dict(columns)


def _csv_compression(path: Path) -> str | None:
    """The compression pandas is to undo, by the file's content; archives it cannot read
    as one table are refused."""
    kind = archive_kind(path)
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as bundle:
                members = bundle.namelist()
        except zipfile.BadZipFile as exc:
            raise DataError(f"{path}: not a valid zip archive ({exc})") from None
        if len(members) != 1:
            raise DataError(
                f"{path} is a zip archive of {len(members)} files, not one CSV table: "
                "unpack it first"
            )
    if kind is not None and kind not in _CSV_COMPRESSIONS:
        raise DataError(f"{path} is a {kind} archive, not a text file: unpack it first")
    return kind


def _read_csv(path: Path, sep: str, compression: str | None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep, compression=compression)
    except (EOFError, OSError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        problem = f"damaged {compression} data" if compression else "cannot be read"
        raise DataError(f"{path}: {problem} ({exc})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a CSV table with a header") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise DataError(f"{path}: not readable as CSV with sep={sep!r}: {detail}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _require_parquet(path: Path) -> None:
    """Name what a file that is not parquet is, before pyarrow's generic complaint."""
    with path.open("rb") as handle:
        if handle.read(4) == b"PAR1":
            return
    kind = archive_kind(path)
    if kind is not None:
        raise DataError(f"{path} is a {kind} archive, not a parquet file: unpack it first")
    head = first_line(path)
    hint = ""
    if head is not None and head[1].isprintable():
        hint = f"; its first line reads {head[1][:60]!r}: for text use data.source: csv"
    raise DataError(
        f"{path}: not a parquet file (it does not start with the parquet magic bytes 'PAR1'){hint}"
    )


def _parquet_header(path: Path) -> list[str]:
    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None


def _read_parquet(path: Path, names: list[str]) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=names)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None


def _is_number_dtype(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _all_numeric(table: pd.DataFrame, width: int) -> bool:
    return (
        table.shape[1] == width
        and all(_is_number_dtype(table[column]) for column in table.columns)
        and not table.isna().to_numpy().any()
    )


def _describe(sep: str | None) -> str:
    return _SEPARATOR_NAMES.get(sep, repr(sep))


def _locate_problem(
    path: Path, sep: str | None, names: Sequence[str], encoding: str, expected: str
) -> DataError:
    """Rescan the file to find the first line the fast parser could not make sense of."""
    with path.open(encoding=encoding, errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = text.split(sep)
            if len(fields) != len(names):
                return DataError(
                    f"{path}: line {number}: expected {expected}, found {len(fields)} "
                    f"field(s): {text!r}"
                )
            for name, field in zip(names, fields, strict=True):
                if not _is_number(field):
                    return DataError(
                        f"{path}: line {number}: {name} must be a number, found {field!r}"
                    )
    return DataError(f"{path}: cannot be read as lines of {expected}")


def _line_of_row(
    path: Path, row: int, header: bool, sep: str, encoding: str, compression: str | None
) -> int | None:
    """The 1-based line where table row ``row`` starts, skipping blank lines like pandas."""
    skip = row + 1 if header else row  # records before it: the header, then earlier rows
    with _open_text(path, encoding, compression) as handle:
        if header and len(sep) == 1:
            reader = csv.reader(handle, delimiter=sep)
            start = 1
            for record in reader:
                if record and not (len(record) == 1 and not record[0].strip()):
                    if skip == 0:
                        return start
                    skip -= 1
                start = reader.line_num + 1
        else:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    if skip == 0:
                        return number
                    skip -= 1
    return None


def _open_text(path: Path, encoding: str, compression: str | None) -> IO[str]:
    if compression == "zip":
        with zipfile.ZipFile(path) as bundle:
            member = bundle.namelist()[0]
        return zipfile.Path(path, at=member).open(
            "r", encoding=encoding, errors="replace", newline=""
        )
    return _OPENERS[compression](path, "rt", encoding=encoding, errors="replace", newline="")


def _is_number(field: str) -> bool:
    try:
        return math.isfinite(float(field))
    except ValueError:
        return False

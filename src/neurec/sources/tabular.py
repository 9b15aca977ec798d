"""The ``csv`` and ``parquet`` sources, and the file readers every file source shares.

Users point these sources at their own tables, so most failures are theirs to fix: each
error is a :class:`DataError` or :class:`ConfigError` that names the file, the line or
column and what was expected, never a parser traceback. Large files stay on pandas'
C parser; a file is only rescanned line by line once that parser has found a problem,
to say exactly where it is.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from neurec.errors import ConfigError, DataError
from neurec.sources import SourceData

CANONICAL = ("user", "item", "timestamp", "rating")
_SEPARATOR_NAMES = {"\t": "tabs", None: "whitespace"}


def load(options: Mapping[str, Any]) -> SourceData:
    """Load a user's ``csv`` or ``parquet`` table; ``data.<csv|parquet>.columns`` maps names."""
    settings = source_options(options, allowed=("columns", "sep"))
    sep = settings.get("sep", ",")
    if not isinstance(sep, str) or not sep:
        raise ConfigError(f"parameter data.csv.sep: expected a non-empty string, got {sep!r}")
    path = require_file(source_path(options))
    kind = options.get("source")
    table = read_mapped(path, kind, settings.get("columns"), sep=sep)
    return SourceData(interactions=table)


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


def read_delimited(
    path: Path, sep: str | None, names: Sequence[str], encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read a headerless text file of numeric columns (``sep=None``: any whitespace).

    Multi-character separators (the ``::`` of MovieLens ``.dat`` files) would force
    pandas' slow Python parser, so they are turned into tabs first.
    """
    require_file(path)
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


def read_mapped(path: Path, kind: str, columns: Any, sep: str = ",") -> pd.DataFrame:
    """Read a csv/parquet table with a header into canonical columns.

    ``columns`` maps canonical names to the file's names; a canonical name left out is
    looked up under its own name, and ``rating`` is optional. A CSV is read whole because
    pandas ignores surplus fields on a line when asked for some columns only, and such a
    line (an unquoted separator inside a value) must fail rather than shift silently.
    """
    mapping = _column_mapping(columns, f"data.{kind}.columns")
    if kind == "csv":
        table = _read_csv(path, sep)
        wanted = _resolve(path, mapping, list(table.columns), f"data.{kind}.columns")
    else:
        wanted = _resolve(path, mapping, _parquet_header(path), f"data.{kind}.columns")
        table = _read_parquet(path, list(dict.fromkeys(wanted.values())))
    if table.empty:
        raise DataError(f"{path}: the table has columns but no rows")
    out = pd.DataFrame(index=range(len(table)))
    for canonical, name in wanted.items():
        values = table[name].reset_index(drop=True)
        if canonical == "timestamp":
            out[canonical] = epoch_seconds(values, f"{path}: column {name!r} (timestamp)")
        else:
            out[canonical] = _numeric(values, f"{path}: column {name!r} ({canonical})")
    return out


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


def epoch_seconds(values: pd.Series, where: str) -> pd.Series:
    """Timestamps as int64 epoch seconds, from numbers, datetimes or ISO 8601 strings.

    Datetimes without a time zone are taken as UTC, so the result does not depend on
    the machine's zone.
    """
    _refuse_missing(values, where)
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
                f"{where}: expected numbers (epoch seconds) or ISO 8601 date-times, not a "
                f"mix; data row {row + 1} holds {values.iloc[row]!r}"
            )
    return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("int64")


def _numeric(values: pd.Series, where: str) -> pd.Series:
    _refuse_missing(values, where)
    if _is_number_dtype(values):
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        row = int(numbers.isna().to_numpy().argmax())
        raise DataError(f"{where}: expected numbers; data row {row + 1} holds {values.iloc[row]!r}")
    return numbers


def _refuse_missing(values: pd.Series, where: str) -> None:
    if values.isna().any():
        row = int(values.isna().to_numpy().argmax())
        raise DataError(f"{where}: missing value at data row {row + 1}")


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


def _read_csv(path: Path, sep: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a CSV table with a header") from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise DataError(f"{path}: not readable as CSV with sep={sep!r}: {detail}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


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


def _is_number(field: str) -> bool:
    try:
        return math.isfinite(float(field))
    except ValueError:
        return False

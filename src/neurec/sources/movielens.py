"""MovieLens ratings, from a local copy or from the official GroupLens archives.

With ``data.path`` the file's suffix fixes its format (``.data``: the tab-separated
``u.data`` layout, ``.dat``: the ``::`` of ``ratings.dat``, ``.csv``: ``ratings.csv``), and a
file whose first line uses another separator is refused; any other name (renamed or
partial copies) is read in the layout its first line shows. Without it the
archive of ``data.movielens.variant`` is downloaded once into ``data.movielens.cache_dir``,
checked against its published checksums and kept; MovieLens may not be redistributed,
so the project never ships a copy.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from neurec.errors import ConfigError, DataError
from neurec.sources import SourceData
from neurec.sources.tabular import (
    first_line,
    line_locator,
    read_delimited,
    read_mapped,
    require_separator,
    require_text_file,
    source_options,
    source_path,
)

DEFAULT_URL = "https://files.grouplens.org/datasets/movielens"
DEFAULT_CACHE_DIR = "data/01_raw"
_SETTINGS = ("variant", "cache_dir", "url", "sha256", "md5")
_NAMES = ("user", "item", "rating", "timestamp")
_CSV_COLUMNS = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
_RATING_FILES = ("u.data", "ratings.dat", "ratings.csv")
_TIMEOUT_S = 60
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layout:
    """One MovieLens ratings format: its separator and the sibling file with the titles."""

    sep: str
    titles: str
    title_sep: str | None  # None: movies.csv, read as CSV


# by file suffix; for other names the first line decides, trying these in this order
LAYOUTS = {
    ".dat": Layout(sep="::", titles="movies.dat", title_sep="::"),
    ".data": Layout(sep="\t", titles="u.item", title_sep="|"),
    ".csv": Layout(sep=",", titles="movies.csv", title_sep=None),
}


@dataclass(frozen=True)
class Variant:
    """One GroupLens archive: its folder name, the files we read and its checksums."""

    folder: str
    ratings: str
    titles: str
    md5: str
    sha256: str


# MD5: GroupLens' own sidecar files (files.grouplens.org/datasets/movielens/ml-*.zip.md5),
# as quoted in eli-osherovich/papers_with_code datasets/movielens/dl_config.py and in
# several download scripts that fetch those sidecars.
# SHA-256 (and sizes 4,924,029 / 5,917,549 / 198,702,078 / 261,978,986 bytes):
# tensorflow/datasets tensorflow_datasets/url_checksums/movielens.txt; each also recorded
# independently by other projects after downloading the archive.
VARIANTS = {
    "100k": Variant(
        folder="ml-100k",
        ratings="u.data",
        titles="u.item",
        md5="0e33842e24a9c977be4e0107933c0723",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    ),
    "1m": Variant(
        folder="ml-1m",
        ratings="ratings.dat",
        titles="movies.dat",
        md5="c4d9eecfca2ab87c1945afe126590906",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
    ),
    "20m": Variant(
        folder="ml-20m",
        ratings="ratings.csv",
        titles="movies.csv",
        md5="cd245b17a1ae2cc31bb14903e1204af3",
        sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
    ),
    "25m": Variant(
        folder="ml-25m",
        ratings="ratings.csv",
        titles="movies.csv",
        md5="6b51fb2759a8657d3bfcbfc42b592ada",
        sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
    ),
}


def load(options: Mapping[str, Any]) -> SourceData:
    """Read ``data.path`` when given, else the (cached) GroupLens archive of the variant."""
    settings = source_options(options, allowed=_SETTINGS)
    variant = _variant(settings)
    if options.get("path") not in (None, ""):
        return read_local(source_path(options))
    archive = fetch_archive(variant, settings)
    return read_local(_extract(archive, variant))


def read_local(path: Path) -> SourceData:
    """Ratings in file order, plus titles from the format's sibling file when it exists.

    ``path`` may also be a folder holding one of u.data, ratings.dat or ratings.csv.
    """
    if path.is_dir():
        path = _ratings_in(path)
    head = first_line(require_text_file(path), encoding="latin-1")
    if head is None:
        raise DataError(f"{path}: the file is empty; expected MovieLens ratings")
    number, line = head
    layout = LAYOUTS.get(path.suffix) or _layout_shown_by(path, number, line)
    require_separator(path, layout.sep, line, f"line {number}")
    if layout.sep == "," and not _is_int(line.split(",")[0]):
        data = read_mapped(path, "csv", _CSV_COLUMNS)
    else:
        data = SourceData(read_delimited(path, layout.sep, _NAMES), locate=line_locator(path))
    titles = path.with_name(layout.titles)
    if titles.is_file():
        data.items = _read_titles(titles, layout.title_sep)
    return data


def _layout_shown_by(path: Path, number: int, line: str) -> Layout:
    layout = next((layout for layout in LAYOUTS.values() if layout.sep in line), None)
    if layout is None:
        raise DataError(
            f"{path}: line {number} is not a MovieLens ratings line: {line!r}; expected "
            "user<TAB>item<TAB>rating<TAB>timestamp (u.data), user::item::rating::timestamp "
            "(ratings.dat) or CSV with header userId,movieId,rating,timestamp (ratings.csv)"
        )
    return layout


def fetch_archive(variant: Variant, settings: Mapping[str, Any]) -> Path:
    """The verified archive in the cache folder, downloaded only when it is not there yet.

    The download goes to a temporary file next to the target and is renamed only after
    its checksum matched, so an interrupted or corrupt download never looks cached.
    """
    expected = _expected_digests(settings, variant)
    url = _archive_url(settings, variant)
    cache = _cache_dir(settings)
    target = cache / f"{variant.folder}.zip"
    if target.is_file():
        mismatch = _mismatch(target, expected)
        if mismatch:
            raise DataError(
                f"{target}: cached archive fails its check ({mismatch}); delete it to "
                "download it again"
            )
        return target
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            size = response.headers.get("Content-Length")
            _write_atomically(target, response, lambda part: _check(part, url, expected, size))
    except (OSError, http.client.HTTPException) as exc:
        raise DataError(f"downloading {url} failed ({_reason(exc)}); nothing was saved") from None
    return target


def _check(part: Path, url: str, expected: Mapping[str, str], size: str | None) -> None:
    """Refuse a download that is cut short (a closed connection reads as a clean end)."""
    received = part.stat().st_size
    if size is not None and size.isdigit() and received != int(size):
        raise DataError(
            f"downloading {url} failed (received {received} of {size} bytes); nothing was saved"
        )
    mismatch = _mismatch(part, expected)
    if mismatch:
        raise DataError(
            f"{url}: downloaded archive fails its check ({mismatch}); it was discarded. "
            "For a custom archive set data.movielens.sha256 or data.movielens.md5"
        )


def _extract(archive: Path, variant: Variant) -> Path:
    """Unpack the ratings and titles files next to the archive (once), return the ratings."""
    folder = archive.parent / variant.folder
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = set(bundle.namelist())
            for name in (variant.ratings, variant.titles):
                member, target = f"{variant.folder}/{name}", folder / name
                if target.is_file():
                    continue
                if member not in members:
                    if name == variant.titles:
                        continue  # titles are optional; ratings are not
                    raise DataError(f"{archive}: has no {member}; expected the GroupLens layout")
                folder.mkdir(exist_ok=True)
                with bundle.open(member) as stream:
                    _write_atomically(target, stream)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a valid zip archive ({exc}); delete it") from None
    return folder / variant.ratings


def _write_atomically(
    target: Path, stream: BinaryIO, check: Callable[[Path], None] | None = None
) -> None:
    """Copy ``stream`` to ``target`` via a temporary sibling that is removed on any failure."""
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    part = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(stream, out, _CHUNK)
        if check is not None:
            check(part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _mismatch(path: Path, expected: Mapping[str, str]) -> str | None:
    """Describe the first digest of ``path`` that differs from ``expected``, if any."""
    hashes = {name: hashlib.new(name, usedforsecurity=False) for name in expected}
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            for digest in hashes.values():
                digest.update(chunk)
    for name, want in expected.items():
        got = hashes[name].hexdigest()
        if got != want:
            return f"{name} {got}, expected {want}"
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _variant(settings: Mapping[str, Any]) -> Variant:
    name = settings.get("variant", "100k")
    if name not in VARIANTS:
        raise ConfigError(
            f"parameter data.movielens.variant: unknown MovieLens variant {name!r}; "
            f"expected one of {list(VARIANTS)}"
        )
    return VARIANTS[name]


def _expected_digests(settings: Mapping[str, Any], variant: Variant) -> dict[str, str]:
    """Digests the archive must have: those configured for a custom archive, else GroupLens'."""
    given = {}
    for name, length in (("sha256", 64), ("md5", 32)):
        value = settings.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", value):
            raise ConfigError(
                f"parameter data.movielens.{name}: expected {length} hexadecimal digits, "
                f"got {value!r}"
            )
        given[name] = value.lower()
    return given or {"sha256": variant.sha256, "md5": variant.md5}


def _archive_url(settings: Mapping[str, Any], variant: Variant) -> str:
    """``data.movielens.url`` is the folder holding ``ml-<variant>.zip``, or the archive itself."""
    base = settings.get("url", DEFAULT_URL)
    scheme = urllib.parse.urlsplit(base).scheme if isinstance(base, str) else None
    if scheme not in ("http", "https", "file"):
        raise ConfigError(
            f"parameter data.movielens.url: expected an http(s):// or file:// URL, got {base!r}"
        )
    return base if base.endswith(".zip") else f"{base.rstrip('/')}/{variant.folder}.zip"


def _cache_dir(settings: Mapping[str, Any]) -> Path:
    value = settings.get("cache_dir", DEFAULT_CACHE_DIR)
    if not isinstance(value, str | os.PathLike) or value == "":
        raise ConfigError(f"parameter data.movielens.cache_dir: expected a folder, got {value!r}")
    folder = Path(value).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"parameter data.movielens.cache_dir: cannot create {folder} ({exc.strerror})"
        ) from None
    return folder


def _ratings_in(folder: Path) -> Path:
    for name in _RATING_FILES:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: holds none of the MovieLens ratings files {list(_RATING_FILES)}")


def _read_titles(path: Path, sep: str | None) -> pd.DataFrame:
    """Item ids and titles from u.item / movies.dat (``sep``) or movies.csv (``None``)."""
    head = first_line(require_text_file(path), encoding="latin-1")
    if sep is not None and head is not None:
        require_separator(path, sep, head[1], f"line {head[0]}")
    items, titles = [], []
    try:
        for number, fields in _title_rows(path, sep):
            if len(fields) < 2 or not _is_int(fields[0]):
                raise DataError(
                    f"{path}: line {number}: expected an item id and a title, found {fields!r}"
                )
            items.append(int(fields[0]))
            titles.append(fields[1])
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not items:
        raise DataError(f"{path}: the file is empty; expected one line per movie")
    return pd.DataFrame(
        {"item": np.array(items, dtype=np.int64), "title": pd.Series(titles, dtype="str")}
    )


def _title_rows(path: Path, sep: str | None) -> Iterator[tuple[int, list[str]]]:
    if sep is None:  # movies.csv: quoted titles may hold commas, so use a real CSV reader
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if header[:2] != ["movieId", "title"]:
                raise DataError(
                    f"{path}: line 1: expected the header movieId,title,genres, found {header!r}"
                )
            for row in reader:
                if row:
                    yield reader.line_num, row
        return
    with path.open(encoding="latin-1") as handle:  # the archives' .dat/.item encoding
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip("\r\n").split(sep)


def _is_int(text: str) -> bool:
    return text.strip().isdigit()

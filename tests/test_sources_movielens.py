"""MovieLens: local copies in each official layout, and the cached, verified download."""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import http.server
import io
import lzma
import os
import re
import tarfile
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from neurec.errors import ConfigError, DataError
from neurec.sources import load_source
from neurec.sources.movielens import VARIANTS

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
U_ITEM = (
    "242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|0|0\n"
    "302|L.A. Confidential (1997)|01-Jan-1997||http://us.imdb.com/x|0|1\n"
    "377|Café Heavyweights (1994)|01-Jan-1994||http://us.imdb.com/y|0|0\n"
)
RATINGS_DAT = "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298000\n"
MOVIES_DAT = (
    "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
    "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
)
RATINGS_CSV = "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,4.0,1112484676\n"
MOVIES_CSV = (
    "movieId,title,genres\n2,Jumanji (1995),Adventure\n"
    '29,"City of Lost Children, The (Cité des enfants perdus, La) (1995)",Drama\n'
)


def _shared_data() -> Path:
    """The project's read-only reference data (never copied into the repository)."""
    configured = os.environ.get("NEUREC_SHARED_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_text(text, encoding=encoding)
    return path


def _local(path: Path, **settings):
    return load_source({"source": "movielens", "path": str(path), "movielens": settings})


# --- local copies -----------------------------------------------------------------------


def test_u_data_with_u_item_titles(tmp_path):
    _write(tmp_path, "u.item", U_ITEM, encoding="latin-1")
    data = _local(_write(tmp_path, "u.data", U_DATA))
    table = data.interactions
    assert table["user"].tolist() == [196, 186, 22]  # file order
    assert table["item"].tolist() == [242, 302, 377]
    assert table["timestamp"].tolist() == [881250949, 891717742, 878887116]
    assert table["rating"].tolist() == [3.0, 3.0, 1.0]
    assert data.items["item"].tolist() == [242, 302, 377]
    assert data.items["title"].tolist()[2] == "Café Heavyweights (1994)"  # latin-1 decoded


def test_the_suffix_fixes_the_format_and_other_names_are_read_by_content(tmp_path):
    _write(tmp_path, "movies.dat", MOVIES_DAT, encoding="latin-1")
    data = _local(_write(tmp_path, "ratings_users_1-2999_partial.dat", RATINGS_DAT))
    assert data.interactions["item"].tolist() == [1193, 661, 1193]
    assert data.interactions["rating"].tolist() == [5.0, 3.0, 4.0]
    assert data.items["title"].tolist()[1] == "James and the Giant Peach (1996)"
    renamed = _local(_write(tmp_path, "export.txt", RATINGS_DAT))
    assert renamed.interactions["user"].tolist() == [1, 1, 2]
    tabs = _local(_write(tmp_path, "u1.base", U_DATA))
    assert tabs.interactions["user"].tolist() == [196, 186, 22]


@pytest.mark.parametrize(
    ("name", "text", "expected", "found"),
    [
        ("ratings.dat", RATINGS_DAT.replace("::", ","), "'::'", "','"),
        ("ratings.dat", U_DATA, "'::'", "tabs"),
        ("u.data", U_DATA.replace("\t", "::"), "tabs", "'::'"),
        ("u.data", U_DATA.replace("\t", " "), "tabs", "spaces"),
        ("ratings.csv", RATINGS_CSV.replace(",", ";"), "','", "';'"),
        ("ratings.csv", "\n" + RATINGS_CSV.replace(",", "\t"), "','", "tabs"),
    ],
    ids=["dat-comma", "dat-tab", "data-colons", "data-spaces", "csv-semicolon", "csv-tab"],
)
def test_a_ratings_file_with_another_separator_names_both(tmp_path, name, text, expected, found):
    path = _write(tmp_path, name, text)
    with pytest.raises(DataError) as error:
        _local(path)
    assert str(error.value).startswith(
        f"{path}: expected fields separated by {expected}, found {found} (line "
    )


def test_a_titles_file_with_another_separator_names_both(tmp_path):
    titles = _write(tmp_path, "movies.dat", MOVIES_DAT.replace("::", ","))
    with pytest.raises(DataError) as error:
        _local(_write(tmp_path, "ratings.dat", RATINGS_DAT))
    assert str(error.value).startswith(f"{titles}: expected fields separated by '::', found ','")


def _tar(text: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as bundle:
        member = tarfile.TarInfo("u.data")
        member.size = len(text)
        bundle.addfile(member, io.BytesIO(text))
    return buffer.getvalue()


def _zip(text: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("u.data", text)
    return buffer.getvalue()


ARCHIVES = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zip": _zip,
    "tar": _tar,
    "7z": lambda text: b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24),
}


@pytest.mark.parametrize("name", ["u.data.gz", "u.data"])
@pytest.mark.parametrize("kind", ARCHIVES)
def test_an_archive_is_named_not_parsed(tmp_path, kind, name):
    path = tmp_path / name
    path.write_bytes(ARCHIVES[kind](U_DATA.encode()))
    with pytest.raises(DataError) as error:
        _local(path)
    assert str(error.value) == f"{path} is a {kind} archive, not a text file: unpack it first"


def test_a_compressed_titles_file_is_named(tmp_path):
    (tmp_path / "u.item").write_bytes(gzip.compress(U_ITEM.encode("latin-1")))
    with pytest.raises(DataError, match=r"u\.item is a gzip archive, not a text file"):
        _local(_write(tmp_path, "u.data", U_DATA))


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("u.data", U_DATA * 5 + "\n7\t8\t3\t-5\n" + U_DATA, "line 17: column 'timestamp' is -5"),
        ("ratings.dat", "1::2::3::4\n-1::2::3::4\n", "line 2: column 'user' is -1"),
        ("ratings.csv", RATINGS_CSV + "\n1,-29,4.0,5\n", "line 5: column 'item' is -29"),
        ("ratings.csv", "1,2,3,4\n1,2,3,-4\n", "line 2: column 'timestamp' is -4"),
    ],
    ids=["u.data-blank-line", "dat", "csv-header", "csv-headerless"],
)
def test_a_negative_id_or_timestamp_names_its_line(tmp_path, name, text, where):
    path = _write(tmp_path, name, text)
    with pytest.raises(DataError) as error:
        _local(path)
    assert str(error.value) == f"{path}: {where}; expected a non-negative value"


def test_csv_layout_with_movies_csv(tmp_path):
    _write(tmp_path, "movies.csv", MOVIES_CSV)
    data = _local(_write(tmp_path, "ratings.csv", RATINGS_CSV))
    assert data.interactions["rating"].tolist() == [3.5, 4.0]
    assert data.interactions["timestamp"].tolist() == [1112486027, 1112484676]
    assert data.items["title"].tolist()[1].startswith("City of Lost Children, The (Cité")


def test_headerless_csv_and_a_folder_path(tmp_path):
    _write(tmp_path, "ratings.csv", "1,2,3,4\n5,6,7,8\n")
    data = _local(tmp_path)
    assert data.interactions["timestamp"].tolist() == [4, 8]
    assert data.items is None  # no movies.csv next to it


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("u.data", "", ["the file is empty"]),
        ("export.txt", "196 242 3 881250949\n", ["line 1 is not a MovieLens ratings line"]),
        ("u.data", "1\t2\t3\t4\n5\t6\t7\n", ["line 2", "expected 4 fields", "tabs"]),
        ("u.data", "1\t2\t3\t4\n5\t6\t7\tnever\n", ["line 2", "timestamp must be a number"]),
        ("u.data", "1\tabc\t3\t4\n", ["line 1", "item must be a number", "'abc'"]),
        ("r.dat", "1::2::3::4\n1::2::3::4::5\n", ["line 2", "separated by '::'", "found 5"]),
        ("ratings.csv", "userId,movieId,rating\n1,2,3\n", ["no column 'timestamp'"]),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,x\n", ["'timestamp'", "'x'"]),
    ],
)
def test_malformed_ratings_files_are_data_errors(tmp_path, name, text, fragments):
    path = _write(tmp_path, name, text)
    with pytest.raises(DataError) as error:
        _local(path)
    assert str(error.value).startswith(str(path))
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize(
    ("ratings", "titles", "text", "fragment"),
    [
        ("u.data", "u.item", "242|Kolya\nKolya|242\n", "line 2: expected an item id and a title"),
        ("u.data", "u.item", "\n", "the file is empty"),
        ("r.dat", "movies.dat", "1193\n", "line 1: expected an item id and a title"),
        (
            "ratings.csv",
            "movies.csv",
            "id,name\n1,x\n",
            "line 1: expected the header movieId,title",
        ),
    ],
)
def test_malformed_title_files_are_data_errors(tmp_path, ratings, titles, text, fragment):
    content = {"u.data": U_DATA, "r.dat": RATINGS_DAT, "ratings.csv": RATINGS_CSV}[ratings]
    path = _write(tmp_path, ratings, content)
    titles_path = _write(tmp_path, titles, text)
    with pytest.raises(DataError, match=re.escape(f"{titles_path}: {fragment}")):
        _local(path)


def test_non_utf8_movies_csv_is_a_data_error(tmp_path):
    (tmp_path / "movies.csv").write_bytes("movieId,title\n1,Caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        _local(_write(tmp_path, "ratings.csv", RATINGS_CSV))


def test_missing_local_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        _local(tmp_path / "u.data")
    with pytest.raises(DataError, match="holds none of the MovieLens ratings files"):
        _local(tmp_path)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"variant": "10m"}, "parameter data.movielens.variant"),
        ({"varient": "1m"}, "parameter data.movielens.varient"),
        ({"url": "ftp://example.org"}, "parameter data.movielens.url"),
        ({"url": 5}, "parameter data.movielens.url"),
        ({"sha256": "abc"}, "parameter data.movielens.sha256"),
        ({"md5": "z" * 32}, "parameter data.movielens.md5"),
        ({"cache_dir": ""}, "parameter data.movielens.cache_dir"),
    ],
)
def test_bad_settings_are_config_errors(settings, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_source({"source": "movielens", "movielens": settings})


def test_cache_dir_that_cannot_be_created(tmp_path):
    blocker = _write(tmp_path, "file", "x")
    with pytest.raises(ConfigError, match=r"data\.movielens\.cache_dir: cannot create"):
        load_source({"source": "movielens", "movielens": {"cache_dir": str(blocker / "sub")}})


# --- download -----------------------------------------------------------------------------


def _archive(path: Path, folder: str, files: dict[str, str]) -> Path:
    """A zip in the GroupLens layout (``ml-100k/u.data`` ...); .dat/.item in latin-1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, text in files.items():
            encoding = "utf-8" if name.endswith(".csv") else "latin-1"
            bundle.writestr(f"{folder}/{name}", text.encode(encoding))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server over ``tmp_path/www`` that records the paths it was asked for."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            if self.path.startswith("/truncated/"):  # promises more bytes than it sends
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"PK\x03\x04 only the start")
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield SimpleNamespace(
        root=root, url=f"http://127.0.0.1:{httpd.server_port}", requested=requested
    )
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _download(cache: Path, **settings):
    return load_source({"source": "movielens", "movielens": {"cache_dir": str(cache), **settings}})


def test_download_over_http_verifies_extracts_and_caches(server, tmp_path):
    archive = _archive(server.root / "ml-100k.zip", "ml-100k", {"u.data": U_DATA, "u.item": U_ITEM})
    cache = tmp_path / "cache"
    data = _download(cache, url=server.url, sha256=_sha256(archive))
    assert server.requested == ["/ml-100k.zip"]
    assert data.interactions["user"].tolist() == [196, 186, 22]
    assert data.items["title"].tolist()[0] == "Kolya (1996)"
    assert sorted(p.name for p in cache.rglob("*")) == [
        "ml-100k",
        "ml-100k.zip",
        "u.data",
        "u.item",
    ]
    again = _download(cache, url=server.url, sha256=_sha256(archive))
    assert server.requested == ["/ml-100k.zip"]  # served from the cache
    assert again.interactions.equals(data.interactions)


def test_download_from_file_url_with_md5(tmp_path):
    archive = _archive(tmp_path / "mirror" / "custom.zip", "ml-1m", {"ratings.dat": RATINGS_DAT})
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    data = _download(cache, variant="1m", url=archive.as_uri(), md5=md5.upper())
    assert data.interactions["item"].tolist() == [1193, 661, 1193]
    assert data.items is None  # this archive has no movies.dat
    assert (cache / "ml-1m.zip").is_file()


@pytest.mark.parametrize(
    "checksum",
    [{"sha256": "0" * 64}, {}],
    ids=["configured-sha256", "official-checksum"],
)
def test_checksum_mismatch_leaves_nothing_behind(server, tmp_path, checksum):
    _archive(server.root / "ml-100k.zip", "ml-100k", {"u.data": U_DATA})
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as error:
        _download(cache, url=server.url, **checksum)
    message = str(error.value)
    assert f"{server.url}/ml-100k.zip" in message
    assert "fails its check" in message and "discarded" in message
    expected = "0" * 64 if checksum else VARIANTS["100k"].sha256
    assert expected in message
    assert list(cache.iterdir()) == []


def test_http_error_leaves_nothing_behind(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"downloading .*ml-100k\.zip failed \(HTTP 404"):
        _download(cache, url=server.url + "/", sha256="0" * 64)
    assert list(cache.iterdir()) == []


def test_interrupted_download_leaves_nothing_behind(server, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"downloading .*/truncated/ml-100k\.zip failed"):
        _download(cache, url=server.url + "/truncated", sha256="0" * 64)
    assert list(cache.iterdir()) == []


def test_unreachable_file_url(tmp_path):
    missing = (tmp_path / "nowhere" / "ml-100k.zip").as_uri()
    with pytest.raises(DataError, match="failed"):
        _download(tmp_path / "cache", url=missing, sha256="0" * 64)


def test_corrupt_cached_archive_is_reported_not_replaced(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = _write(cache, "ml-100k.zip", "not a zip")
    with pytest.raises(DataError, match=r"cached archive fails its check .*delete it"):
        _download(cache)
    with pytest.raises(DataError, match="not a valid zip archive"):
        _download(cache, sha256=_sha256(cached))
    assert cached.read_text() == "not a zip"


def test_archive_without_the_ratings_file(tmp_path):
    archive = _archive(tmp_path / "ml-100k.zip", "ml-100k", {"u.item": U_ITEM})
    with pytest.raises(DataError, match=r"has no ml-100k/u\.data"):
        _download(tmp_path / "cache", url=archive.as_uri(), sha256=_sha256(archive))


# --- real data ----------------------------------------------------------------------------


def _shared_file(*parts: str) -> Path:
    path = _shared_data().joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"reference data not found at {path} (set NEUREC_SHARED_DATA)")
    return path


def test_real_ml_100k():
    table = _local(_shared_file("ml-100k", "u.data")).interactions
    assert len(table) == 100_000
    assert table["user"].nunique() == 943
    assert table["item"].nunique() == 1682
    assert table.iloc[0].tolist() == [196, 242, 881250949, 3.0]


def test_real_ml_1m_partial_with_titles():
    data = _local(_shared_file("ml-1m", "ratings_users_1-2999_partial.dat"))
    assert len(data.interactions) == 487_650
    assert data.interactions["user"].max() == 2999
    assert len(data.items) == 3883
    assert data.items["title"].iloc[0] == "Toy Story (1995)"

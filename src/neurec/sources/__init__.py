"""Data sources: each turns ``data`` parameters into the canonical interaction table.

The ``data`` parameters name the source, an optional ``path`` and one settings block per
source (``data.synthetic``, ``data.movielens``, ...), so switching ``data.source`` never
trips over another source's settings. A source module exposes
``load(options: Mapping[str, Any]) -> SourceData`` and receives ``{"source", "path",
"options"}`` with ``options`` = its own block. Register new ones in ``SOURCES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from neurec.errors import ConfigError
from neurec.interactions import validate_interactions

# source name -> module under neurec.sources (imported on use, so one broken optional
# source cannot stop the others from loading)
SOURCES = {
    "synthetic": "synthetic",
    "movielens": "movielens",
    "ncf_paper": "ncf_paper",
    "sequences": "sequences",
    "gsasrec_split": "gsasrec_split",
    "csv": "tabular",
    "parquet": "tabular",
}


@dataclass
class SourceData:
    """What ingest produces.

    ``interactions``: canonical table (user, item, timestamp[, rating]); pre-split sources
    add a ``split`` column with values ``train``/``test``.
    ``items``: optional item metadata with columns ``item`` (source id) and ``title``.
    ``test_candidates``: optional given negatives for the test users, columns ``user``,
    ``item`` (source ids), e.g. the NCF authors' 99 negatives per user.
    ``locate``: optional; names where 0-based row ``i`` of ``interactions`` was read, e.g.
    ``"u.data: line 17"``, for error messages (default: ``"<origin>: row i+1"``).
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    test_candidates: pd.DataFrame | None = None
    locate: Callable[[int], str] | None = None


# former source names -> current ones ("ncf" is the MLP model's name)
RENAMED = {"ncf": "ncf_paper"}


def check_data_params(options: Mapping[str, Any]) -> None:
    """The top-level keys of the ``data`` block: a known source, no unknown key."""
    name = options.get("source")
    if name in RENAMED:
        raise ConfigError(
            f"parameter data.source: {name!r} is now called {RENAMED[name]!r} "
            f"(and its settings block data.{RENAMED[name]})"
        )
    if name not in SOURCES:
        raise ConfigError(
            f"parameter data.source: unknown source {name!r}; expected one of {sorted(SOURCES)}"
        )
    unknown = sorted(set(options) - {"source", "path", *SOURCES})
    if unknown:
        raise ConfigError(
            f"parameter data.{unknown[0]}: unknown; the data block takes 'source', 'path' and "
            f"one settings block per source ({sorted(SOURCES)})"
        )


def load_source(options: Mapping[str, Any]) -> SourceData:
    """Load and validate the interactions described by the ``data`` parameters."""
    check_data_params(options)
    name = options["source"]
    module = importlib.import_module(f"neurec.sources.{SOURCES[name]}")
    data = module.load({"source": name, "path": options.get("path"), "options": options.get(name)})
    origin = str(options.get("path") or f"data source '{name}'")
    data.interactions = validate_interactions(data.interactions, origin, data.locate)
    return data

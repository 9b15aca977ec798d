"""SASRec/BERT4Rec sequence files: one ``user item`` pair per line, each user's lines in
time order.

The files carry no timestamps, so a line's rank within its user (0, 1, 2, ...) stands in
for one: sorting by (user, timestamp) then reproduces the file's order exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neurec.sources import SourceData
from neurec.sources.tabular import line_locator, read_delimited, source_options, source_path


def load(options: Mapping[str, Any]) -> SourceData:
    """Interactions with ``timestamp`` = position of the line among its user's lines."""
    source_options(options, allowed=())
    path = source_path(options)
    table = read_delimited(path, None, ("user", "item"))
    table["timestamp"] = table.groupby("user", sort=False).cumcount().astype("int64")
    return SourceData(interactions=table, locate=line_locator(path))

"""Nodes of the data pipeline: thin adapters over neurec.workflow.

Nodes take parameter blocks as plain dicts and build the typed config themselves: a node
argument annotated with a dataclass would make Kedro instantiate it without the config
builder's checks and messages.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from neurec import workflow
from neurec.sources import load_source
from neurec.split import Split

EMPTY_ITEMS = pd.DataFrame({"item": pd.Series(dtype="int64"), "title": pd.Series(dtype="str")})
EMPTY_PAIRS = pd.DataFrame({"user": pd.Series(dtype="int64"), "item": pd.Series(dtype="int64")})


def ingest(data_params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read the configured source: interactions, item metadata, given test negatives."""
    source = load_source(data_params)
    items = EMPTY_ITEMS if source.items is None else source.items
    given = EMPTY_PAIRS if source.test_candidates is None else source.test_candidates
    return source.interactions, items, given


def split(interactions: pd.DataFrame, split_params: dict[str, Any]) -> tuple[Split, dict[str, Any]]:
    """The split, and its data set statistics on their own for the report."""
    result = workflow.split(interactions, split_params)
    return result, result.statistics


def sample_candidates(
    split: Split, given_candidates: pd.DataFrame, evaluation_params: dict[str, Any]
) -> pd.DataFrame:
    """Draw each sampled protocol's negatives once, so every model sees the same ones."""
    return workflow.candidates(split, evaluation_params, given_candidates)

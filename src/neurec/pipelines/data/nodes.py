"""Nodes of the data pipeline: thin adapters over neurec.sources / neurec.split.

Nodes take parameter blocks as plain dicts and build the typed config themselves: a node
argument annotated with a dataclass would make Kedro instantiate it without the config
builder's checks and messages.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from neurec.errors import DataError
from neurec.evaluation import EvaluationConfig, EvaluationData, build_candidates
from neurec.interactions import Interactions
from neurec.models.base import build_config
from neurec.sources import load_source
from neurec.split import SplitConfig, dataset_statistics, split_interactions

EMPTY_ITEMS = pd.DataFrame({"item": pd.Series(dtype="int64"), "title": pd.Series(dtype="str")})
EMPTY_PAIRS = pd.DataFrame({"user": pd.Series(dtype="int64"), "item": pd.Series(dtype="int64")})


def ingest(data_params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read the configured source: interactions, item metadata, given test negatives."""
    source = load_source(data_params)
    items = EMPTY_ITEMS if source.items is None else source.items
    given = EMPTY_PAIRS if source.test_candidates is None else source.test_candidates
    return source.interactions, items, given


def split(
    interactions: pd.DataFrame, split_params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Filter, remap ids and split; also returns the data set statistics for the report."""
    config = build_config(SplitConfig, split_params, "split")
    result = split_interactions(interactions, config)
    stats = dataset_statistics(interactions, result)
    stats["split"] = dataclasses.asdict(config)
    return (
        result.train,
        result.validation,
        result.test,
        result.user_index,
        result.item_index,
        stats,
    )


def to_interactions(
    table: pd.DataFrame, user_index: pd.DataFrame, item_index: pd.DataFrame
) -> Interactions:
    return Interactions.from_frame(table, len(user_index), len(item_index))


def sample_candidates(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    user_index: pd.DataFrame,
    item_index: pd.DataFrame,
    given_candidates: pd.DataFrame,
    evaluation_params: dict[str, Any],
) -> pd.DataFrame:
    """Draw each sampled protocol's negatives once, so every model sees the same ones."""
    data = EvaluationData.build(
        *(to_interactions(t, user_index, item_index) for t in (train, validation, test))
    )
    config = build_config(EvaluationConfig, evaluation_params, "evaluation")
    return build_candidates(data, config, _given_to_index(given_candidates, user_index, item_index))


def _given_to_index(
    given: pd.DataFrame, user_index: pd.DataFrame, item_index: pd.DataFrame
) -> pd.DataFrame | None:
    """Map source-id negatives to index space; an id the split does not know is an error."""
    if given.empty:
        return None
    users = user_index["source_id"].to_numpy()
    items = item_index["source_id"].to_numpy()
    out = {}
    for column, ids in (("user", users), ("item", items)):
        values = given[column].to_numpy()
        position = np.clip(np.searchsorted(ids, values), 0, len(ids) - 1)
        unknown = ids[position] != values
        if unknown.any():
            raise DataError(
                f"given test negatives: {column} id {values[unknown][0]} does not occur in the "
                f"split data ({int(unknown.sum())} such rows); the negatives file must match "
                "the interactions"
            )
        out[column] = position
    return pd.DataFrame(out)

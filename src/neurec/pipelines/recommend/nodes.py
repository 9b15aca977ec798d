"""The recommend node: a thin adapter over neurec.recommend."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from neurec.datasets import ModelShelf
from neurec.errors import ConfigError
from neurec.models import registry
from neurec.pipelines.data.nodes import to_interactions
from neurec.provenance import split_fingerprint
from neurec.recommend import item_popularity, recommend_users, recommendation_table

logger = logging.getLogger(__name__)


def recommend_for_users(
    trained_models: ModelShelf,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    user_index: pd.DataFrame,
    item_index: pd.DataFrame,
    item_metadata: pd.DataFrame,
    recommend_params: dict[str, Any],
) -> pd.DataFrame:
    """Top-k for every user of the split, excluding all their train/validation/test items.

    The history read by history models is everything known about the user (train +
    validation + test). Users the model cannot score (no history for a history model;
    no training interactions for an embedding model) get popular items, marked in the
    ``strategy`` column.
    """
    name = recommend_params.get("model")
    if name not in registry():
        raise ConfigError(
            f"parameter recommend.model: {name!r} is not a registered model; "
            f"expected one of {sorted(registry())}"
        )
    k = recommend_params.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"parameter recommend.k: expected a positive integer, got {k!r}")
    # a model trained on other data, or of another class, is refused (DataError)
    model = trained_models.load(name, split_fingerprint(train, validation, user_index, item_index))
    splits = [to_interactions(t, user_index, item_index) for t in (train, validation, test)]
    histories = splits[0].histories.append(splits[1].histories).append(splits[2].histories)
    scored_from = histories if model.uses_history else splits[0].histories
    use_model = scored_from.lengths() > 0
    users = np.arange(len(user_index))
    items, scores = recommend_users(
        model, users, histories, k, item_popularity(train, len(item_index)), use_model
    )
    table = recommendation_table(
        user_index["source_id"].to_numpy(), items, scores, use_model, item_index, item_metadata
    )
    logger.info(
        "recommend: top %d of model '%s' for %d users (%d from popularity)",
        k,
        name,
        len(users),
        int((~use_model).sum()),
    )
    return table

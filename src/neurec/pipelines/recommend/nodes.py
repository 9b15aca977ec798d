"""The recommend node: a thin adapter over neurec.recommend."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from neurec.datasets import ModelShelf
from neurec.models import registry
from neurec.models.base import build_config, check_choice, check_positive
from neurec.pipelines.data.nodes import to_interactions
from neurec.provenance import split_fingerprint
from neurec.recommend import item_popularity, recommend_users, recommendation_table

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecommendConfig:
    """The ``recommend`` parameters block (``conf/base/parameters_recommend.yml``)."""

    # EASE: trained in seconds, and it serves users it never saw from their history
    model: str = "ease"
    # a typical list length for a page of recommendations
    k: int = 10

    def __post_init__(self) -> None:
        check_choice("model", self.model, tuple(sorted(registry())))
        check_positive("k", self.k)


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
    config = build_config(RecommendConfig, recommend_params, "recommend")
    name, k = config.model, config.k
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

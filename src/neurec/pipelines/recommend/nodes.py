"""The recommend node: a thin adapter over neurec.recommend."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from neurec.datasets import ModelShelf
from neurec.interactions import Histories
from neurec.models import Recommender, registry
from neurec.models.base import build_config, check_choice, check_positive
from neurec.recommend import recommend_users, recommendation_table
from neurec.split import Split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecommendConfig:
    """The ``recommend`` parameters block (``conf/base/parameters_recommend.yml``)."""

    # EASE: trained in seconds, and it serves users it never saw from their history
    model: str = "ease"
    # a typical list length for a page of recommendations
    k: int = 10
    # users per chunk written to the parquet file: memory holds batch_size x k output rows
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        check_choice("model", self.model, tuple(sorted(registry())))
        check_positive("k", self.k)
        check_positive("batch_size", self.batch_size)


def recommend_for_users(
    trained_models: ModelShelf,
    split: Split,
    item_metadata: pd.DataFrame,
    recommend_params: dict[str, Any],
) -> Iterator[pd.DataFrame]:
    """Top-k for every user of the split, excluding all their train/validation/test items.

    The history read by history models is everything known about the user (train +
    validation + test). Users the model cannot score (no history for a history model;
    no training interactions for an embedding model) get popular items, marked in the
    ``strategy`` column.

    Returns the table lazily, ``recommend.batch_size`` users at a time, for
    ``ParquetChunks`` to write; the parameters and the model are checked at once.
    """
    config = build_config(RecommendConfig, recommend_params, "recommend")
    # a model trained on other data, or of another class, is refused (DataError)
    model = trained_models.load(config.model, split.fingerprint)
    histories = split.everything()
    scored_from = histories if model.uses_history else split.train.histories
    return recommendation_chunks(
        model,
        histories,
        scored_from.lengths() > 0,
        split.popularity(),
        split.user_index["source_id"].to_numpy(),
        split.item_index,
        item_metadata,
        config,
    )


def recommendation_chunks(
    model: Recommender,
    histories: Histories,
    use_model: np.ndarray,
    popularity: np.ndarray,
    user_ids: np.ndarray,
    item_index: pd.DataFrame,
    item_metadata: pd.DataFrame,
    config: RecommendConfig,
) -> Iterator[pd.DataFrame]:
    """The recommendation table of users ``0..len(user_ids)-1``, ``config.batch_size`` users
    per DataFrame (int32 ranks, float32 scores), each computed only when asked for."""
    for start in range(0, len(user_ids), config.batch_size):
        users = np.arange(start, min(start + config.batch_size, len(user_ids)))
        items, scores = recommend_users(
            model, users, histories, config.k, popularity, use_model[users]
        )
        table = recommendation_table(
            user_ids[users], items, scores, use_model[users], item_index, item_metadata
        )
        yield table.astype({"rank": np.int32, "score": np.float32})
    logger.info(
        "recommend: top %d of model '%s' for %d users (%d from popularity)",
        config.k,
        config.model,
        len(user_ids),
        int((~use_model).sum()),
    )

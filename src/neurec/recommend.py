"""Top-K recommendations from a trained model: for every known user, or for any history.

Items a user already has are never recommended. Who can be scored by the model:

* models with ``uses_history = True`` (EASE, sequence models, autoencoders, most
  popular) score any non-empty history, also one of a user never seen in training
  (given to the model under a user index it does not know);
* embedding models (``uses_history = False``: GMF, NeuMF, iALS, ...) need the user's
  learned vector, so a new user gets the most popular items instead;
* an empty history, or one whose items are all unknown, is a cold start: popular items.

Each answer says which ("model" or "popularity") and why, and lists the history ids the
training data never had: they cannot be used, and are reported rather than dropped.
Plain Python: :func:`recommend` needs a model, the item id map and item popularity;
:class:`RecommendationService` bundles them from a Kedro project's files or catalog, and
refuses a model file trained on another data set or split, or of another model class
(``neurec.provenance``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from neurec.interactions import Histories
from neurec.models.base import Recommender

MODEL, POPULARITY = "model", "popularity"


def recommend_users(
    model: Recommender,
    users: np.ndarray,
    histories: Histories,
    k: int,
    popularity: np.ndarray,
    use_model: np.ndarray,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Index-space top-``k`` items and scores ``[len(users), k]``, best first.

    Rows where ``use_model`` is False rank by ``popularity``. Every item in a user's
    ``histories`` row is excluded; when fewer than ``k`` items remain, the row ends in
    scores of ``-inf``.
    """
    k = min(k, histories.n_items)
    fallback = torch.as_tensor(popularity, dtype=torch.float32)
    top_items, top_scores = [], []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        by_model = torch.as_tensor(use_model[start : start + batch_size], dtype=torch.bool)
        scores = fallback.expand(len(batch), -1).clone()
        if by_model.any():
            scored = model.score(batch[by_model.numpy()], histories)
            scores[by_model] = scored.float().cpu()
        seen = torch.as_tensor(histories.matrix(batch).toarray() > 0)
        top = scores.masked_fill(seen, -torch.inf).topk(k, dim=1)
        top_items.append(top.indices.numpy())
        top_scores.append(top.values.numpy())
    return np.concatenate(top_items), np.concatenate(top_scores)


def recommendation_table(
    users: np.ndarray,
    items: np.ndarray,
    scores: np.ndarray,
    use_model: np.ndarray,
    item_index: pd.DataFrame,
    titles: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Long table user, rank, item (source ids), score, title, strategy, from index space.

    ``users`` are the ids to write (source ids); rows of ``-inf`` score (nothing left to
    recommend) are dropped, so a user may have fewer than k rows.
    """
    n, k = items.shape
    keep = np.isfinite(scores)
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))[keep]
    ranks = np.broadcast_to(np.arange(1, k + 1)[None, :], (n, k))[keep]
    item_ids = item_index["source_id"].to_numpy()[items[keep]]
    table = pd.DataFrame(
        {
            "user": np.asarray(users)[rows],
            "rank": ranks,
            "item": item_ids,
            "score": scores[keep],
            "strategy": np.where(np.asarray(use_model)[rows], MODEL, POPULARITY),
        }
    )
    names = (
        pd.Series(dtype="str")
        if titles is None or titles.empty
        else titles.drop_duplicates("item").set_index("item")["title"]
    )
    table.insert(4, "title", table["item"].map(names).astype("string"))
    return table


@dataclass(frozen=True)
class Recommendations:
    """One answer: items best first, and how it was reached."""

    items: list[Any]  # source item ids
    scores: list[float]  # model scores, or training counts for popularity
    titles: list[str | None]
    strategy: str  # "model" or "popularity"
    reason: str  # why popularity was used; empty when the model answered
    unknown_items: list[Any] = field(default_factory=list)  # history ids not in training

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "rank": np.arange(1, len(self.items) + 1),
                "item": self.items,
                "score": self.scores,
                "title": self.titles,
            }
        )


def recommend(
    model: Recommender,
    history: Sequence[Any],
    k: int = 10,
    *,
    item_index: pd.DataFrame,
    popularity: np.ndarray,
    user: Any = None,
    user_index: pd.DataFrame | None = None,
    titles: pd.DataFrame | None = None,
) -> Recommendations:
    """Top-``k`` for a history of source item ids (oldest first), never one of them.

    ``user``: optional source user id; with ``user_index``, a user the model was trained
    on is scored as such (embedding models need this). ``item_index`` / ``user_index``:
    the split's id maps (columns item|user, source_id); ``popularity``: per item index,
    e.g. ``Split.popularity()``; ``titles``: optional item metadata (item, title).
    """
    if k < 1:
        raise ValueError(f"k: expected > 0, got {k!r}")
    history = list(history)
    positions = pd.Index(item_index["source_id"]).get_indexer(pd.Index(history, dtype=object))
    unknown = [item for item, position in zip(history, positions, strict=True) if position < 0]
    known = positions[positions >= 0].astype(np.int64)
    row = -1
    if user is not None:
        if user_index is None:
            raise ValueError("recommend: a user id needs the user_index to look it up")
        row = int(pd.Index(user_index["source_id"]).get_indexer([user])[0])
    if model.uses_history:
        use_model = len(known) > 0
        reason = "" if use_model else "cold start: no item of the history is known to the model"
    else:
        use_model = row >= 0
        reason = (
            ""
            if use_model
            else f"model '{model.name}' scores only users it was trained on (by their learned "
            "embedding) and cannot use a new user's history"
        )
    if row < 0:
        row = model.n_users  # an index the model does not know: history models read no user
    indptr = np.zeros(row + 2, dtype=np.int64)
    indptr[-1] = len(known)
    histories = Histories(indptr=indptr, items=known, n_items=len(item_index))
    items, scores = recommend_users(
        model, np.array([row]), histories, k, popularity, np.array([use_model])
    )
    table = recommendation_table(np.array([user]), items, scores, [use_model], item_index, titles)
    return Recommendations(
        items=table["item"].tolist(),
        scores=table["score"].tolist(),
        titles=[None if pd.isna(t) else t for t in table["title"]],
        strategy=MODEL if use_model else POPULARITY,
        reason=reason,
        unknown_items=unknown,
    )


class Catalog(Protocol):
    def load(self, name: str) -> Any: ...

    def __getitem__(self, name: str) -> Any: ...  # the dataset itself


@dataclass(frozen=True)
class RecommendationService:
    """A trained model with what answering needs: id maps, popularity and titles."""

    model: Recommender
    item_index: pd.DataFrame
    popularity: np.ndarray
    user_index: pd.DataFrame | None = None
    titles: pd.DataFrame | None = None

    @classmethod
    def from_catalog(cls, catalog: Catalog, model: str) -> RecommendationService:
        """From a Kedro catalog (e.g. a notebook's ``catalog``) after ``kedro run``.

        The latest ``<model>_model`` must be a ``model`` trained on the catalog's current
        split: one trained on other data or of another class is a DataError.
        """
        split = catalog.load("split")
        return cls(
            model=catalog[f"{model}_model"].load_to_serve(model, split.fingerprint),
            item_index=split.item_index,
            popularity=split.popularity(),
            user_index=split.user_index,
            titles=catalog.load("item_metadata"),
        )

    @classmethod
    def from_project(
        cls,
        project: str | Path = ".",
        model: str = "ease",
        env: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> RecommendationService:
        """From a project folder's outputs, loaded by Kedro: the project's catalog in the
        configuration environment ``env`` (``local`` by default), as ``kedro run`` sees it,
        with ``params`` (nested, as ``kedro run --params`` gives them), and the latest saved
        version of ``<model>_model`` of that data set (``data/06_models/<dataset key>/``)."""
        from kedro.framework.session import KedroSession
        from kedro.framework.startup import bootstrap_project

        root = Path(project).resolve()
        bootstrap_project(root)
        with KedroSession.create(root, env=env, runtime_params=params) as session:
            return cls.from_catalog(session.load_context().catalog, model)

    def recommend(self, history: Sequence[Any], k: int = 10, user: Any = None) -> Recommendations:
        """See :func:`recommend`; ``user`` is an optional source user id."""
        return recommend(
            self.model,
            history,
            k,
            item_index=self.item_index,
            popularity=self.popularity,
            user=user,
            user_index=self.user_index,
            titles=self.titles,
        )

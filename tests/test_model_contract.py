"""The contract every registered model keeps, checked on each one (new models included).

Each model is fitted twice with the same small configuration (neural ones for two short
epochs) on one small synthetic split; the checks read those two fits.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from neurec.datasets import load_model, save_model
from neurec.interactions import Histories
from neurec.models import Recommender, registry
from neurec.recommend import recommend, recommend_users
from tests.conftest import make_split

# a size or budget knob -> its small value, applied to every config that has the field
SMALL = {
    "epochs": 2,
    "batch_size": 64,
    "device": "cpu",
    "factors": 8,
    "layers": (16, 8),
    "hidden_dims": (16,),
    "latent_dim": 8,
    "hidden_size": 16,
    "embedding_size": 16,
    "n_layers": 1,
    "max_len": 12,
    "n_negatives": 8,
    "pretrain": False,  # NeuMF: no GMF/NCF to start from here
}
MODELS = sorted(registry())


def small_params(model_class: type[Recommender]) -> dict:
    fields = {f.name for f in dataclasses.fields(model_class.config_class)}
    return {key: value for key, value in SMALL.items() if key in fields}


@pytest.fixture(scope="module")
def split():
    options = {"n_users": 60, "n_items": 80, "min_length": 6, "mean_length": 12, "seed": 3}
    return make_split({"source": "synthetic", "synthetic": options})


@pytest.fixture(scope="module")
def fitted(split):
    """name -> two models fitted alike (built lazily, once per module)."""
    data, train = split, split.train
    cache: dict[str, tuple[Recommender, Recommender]] = {}

    def get(name: str) -> tuple[Recommender, Recommender]:
        if name not in cache:
            model_class = registry()[name]
            params = small_params(model_class)
            pair = [model_class.from_params(params, data.n_users, data.n_items) for _ in range(2)]
            for model in pair:
                model.fit(train)
            cache[name] = (pair[0], pair[1])
        return cache[name]

    return get


def scored_users(train) -> np.ndarray:
    return np.arange(0, train.n_users, 7)


@pytest.mark.parametrize("name", MODELS)
def test_scores_have_the_documented_shapes_and_candidates_match_full_scores(name, split, fitted):
    data, train = split, split.train
    model, _ = fitted(name)
    users = scored_users(train)
    full = model.score(users, train.histories)
    assert full.shape == (len(users), data.n_items)
    assert torch.isfinite(full).all()
    candidates = np.random.default_rng(0).integers(0, data.n_items, size=(len(users), 5))
    scored = model.score(users, train.histories, candidates)
    assert scored.shape == (len(users), 5)
    torch.testing.assert_close(scored, full.gather(1, torch.as_tensor(candidates)))


@pytest.mark.parametrize("name", MODELS)
def test_the_same_config_and_seed_give_the_same_scores(name, split, fitted):
    train = split.train
    first, second = fitted(name)
    users = scored_users(train)
    assert torch.equal(first.score(users, train.histories), second.score(users, train.histories))


@pytest.mark.parametrize("name", MODELS)
def test_a_saved_and_loaded_model_gives_the_same_scores(name, split, fitted, tmp_path: Path):
    train = split.train
    model, _ = fitted(name)
    save_model(model, tmp_path / f"{name}.pt")
    loaded = load_model(tmp_path / f"{name}.pt")
    assert type(loaded) is type(model) and loaded.config == model.config
    users = scored_users(train)
    assert torch.equal(loaded.score(users, train.histories), model.score(users, train.histories))


def swapped(histories: Histories, owner: np.ndarray) -> Histories:
    """Histories where user ``u`` holds the history of user ``owner[u]``."""
    rows = [histories.of(u) for u in owner]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return Histories(indptr, np.concatenate(rows), histories.n_items)


@pytest.mark.parametrize("name", MODELS)
def test_uses_history_says_whether_scores_follow_the_history_and_serves_new_users_so(
    name, split, fitted
):
    """``uses_history`` is True exactly when a user's scores depend only on the history
    passed (not on the user index): handing every user another's history then gives that
    other user's scores. Such models score a new user's history as the known user's own;
    the others answer a new user with popular items."""
    data, train = split, split.train
    model, _ = fitted(name)
    users = scored_users(train)
    owner = np.roll(np.arange(train.n_users), 1)
    as_owner = model.score(users, swapped(train.histories, owner))
    follows_history = torch.allclose(as_owner, model.score(owner[users], train.histories))
    assert model.uses_history == follows_history

    popularity = data.popularity()
    user = 11
    history = data.item_index["source_id"].to_numpy()[train.histories.of(user)].tolist()
    answer = recommend(model, history, 10, item_index=data.item_index, popularity=popularity)
    if not model.uses_history:
        assert answer.strategy == "popularity"
        return
    assert answer.strategy == "model", answer.reason
    own, _ = recommend_users(model, np.array([user]), train.histories, 10, popularity, [True])
    assert answer.items == data.item_index["source_id"].to_numpy()[own[0]].tolist()

"""Baselines on real data: the bar every neural model is measured against."""

import pytest

from neurec import workflow
from neurec.models import registry
from tests.conftest import make_split


@pytest.fixture(scope="module")
def ml100k(request):
    from tests.conftest import shared_data_dir

    path = shared_data_dir() / "ml-100k" / "u.data"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return make_split({"source": "movielens", "path": str(path)})


def full_ndcg(name, split, params=None):
    model, _ = workflow.train(name, params, split)
    return workflow.evaluate(model, split, None).metrics["full"]["NDCG@10"]


def test_ease_beats_most_popular_by_a_wide_margin_on_ml100k(ml100k):
    assert (ml100k.n_users, ml100k.n_items) == (943, 1682)
    popular = full_ndcg("most_popular", ml100k)
    ease = full_ndcg("ease", ml100k)
    assert ease > 1.4 * popular, (ease, popular)
    ials = full_ndcg("ials", ml100k, {"epochs": 6})
    assert ials > 1.3 * popular, (ials, popular)


def test_ease_model_round_trips_through_the_model_file(ml100k, tmp_path):
    from neurec.datasets import load_model, save_model

    train = ml100k.train
    model = registry()["ease"].from_params({"l2": 300}, train.n_users, train.n_items)
    model.fit(train)
    save_model(model, tmp_path / "ease.pt")
    loaded = load_model(tmp_path / "ease.pt")
    assert loaded.config.l2 == 300
    users = [0, 5, 9]
    assert (loaded.score(users, train.histories) == model.score(users, train.histories)).all()

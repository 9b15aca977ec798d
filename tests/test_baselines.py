"""Baselines on real data: the bar every neural model is measured against."""

import pytest

from neurec.evaluation import EvaluationConfig, EvaluationData, evaluate
from neurec.models import registry
from tests.conftest import make_split


@pytest.fixture(scope="module")
def ml100k(request):
    from tests.conftest import shared_data_dir

    path = shared_data_dir() / "ml-100k" / "u.data"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return make_split({"source": "movielens", "path": str(path)})


def full_ndcg(name, split_arrays, params=None):
    train, validation, test = split_arrays
    model = registry()[name].from_params(params or {}, train.n_users, train.n_items)
    model.fit(train)
    data = EvaluationData.build(train, validation, test)
    settings = EvaluationConfig(protocols=("full",))
    return evaluate(model, data, None, settings)[1]["full"]["NDCG@10"]


def test_ease_beats_most_popular_by_a_wide_margin_on_ml100k(ml100k):
    split, arrays = ml100k
    assert (split.n_users, split.n_items) == (943, 1682)
    popular = full_ndcg("most_popular", arrays)
    ease = full_ndcg("ease", arrays)
    assert ease > 1.4 * popular, (ease, popular)
    ials = full_ndcg("ials", arrays, {"epochs": 6})
    assert ials > 1.3 * popular, (ials, popular)


def test_ease_model_round_trips_through_the_model_file(ml100k, tmp_path):
    from neurec.datasets import load_model, save_model

    _, (train, _, _) = ml100k
    model = registry()["ease"].from_params({"l2": 300}, train.n_users, train.n_items)
    model.fit(train)
    save_model(model, tmp_path / "ease.pt")
    loaded = load_model(tmp_path / "ease.pt")
    assert loaded.config.l2 == 300
    users = [0, 5, 9]
    assert (loaded.score(users, train.histories) == model.score(users, train.histories)).all()

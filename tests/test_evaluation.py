import json
from collections.abc import Mapping

import numpy as np
import pytest
import torch

from neurec import workflow
from neurec.errors import ConfigError
from neurec.evaluation import (
    EvaluationConfig,
    build_candidates,
    evaluate,
    make_validator,
)
from neurec.models import registry
from neurec.models.base import Recommender, build_config, gather_items


class Oracle(Recommender):
    """Knows the test items: scores them 1, everything else 0."""

    name = "oracle"
    config_class = dict

    def __init__(self, targets):
        super().__init__({}, targets.n_users, targets.n_items)
        self.targets = targets

    def fit(self, train, validator=None):
        raise NotImplementedError

    def score(self, users, histories, items=None):
        full = torch.as_tensor(self.targets.matrix(users).toarray())
        return gather_items(full, items)

    def state(self):
        return {}

    def load_state(self, state: Mapping) -> None:
        pass


@pytest.fixture(scope="module")
def evaluation_setup(synthetic_split):
    data = synthetic_split.evaluation
    settings = EvaluationConfig(
        protocols=("full", "sampled_uniform_99", "sampled_popularity_100"), ks=(1, 10)
    )
    return synthetic_split, data, settings, build_candidates(data, settings)


def test_oracle_is_perfect_under_every_protocol(evaluation_setup):
    _, data, settings, candidates = evaluation_setup
    per_user, summary = evaluate(Oracle(data.targets), data, candidates, settings)
    for protocol in ("full", "sampled_uniform_99", "sampled_popularity_100"):
        assert summary[protocol]["HR@1"] == 1.0
        assert summary[protocol]["MRR"] == 1.0
    assert set(per_user["protocol"]) == set(summary)
    assert len(per_user) == 3 * len(data.users)


def test_sampled_and_full_protocols_differ_for_a_real_model(evaluation_setup):
    split, data, settings, candidates = evaluation_setup
    model = registry()["most_popular"].from_params({}, split.n_users, split.n_items)
    model.fit(split.train)
    _, summary = evaluate(model, data, candidates, settings)
    full, uniform = summary["full"]["NDCG@10"], summary["sampled_uniform_99"]["NDCG@10"]
    assert 0 < full < uniform < 1  # 99 negatives are easier than the whole catalogue
    assert 0 < summary["full"]["Coverage@10"] < 0.2  # popularity recommends the same items


def test_validator_reports_ndcg_on_validation(synthetic_split):
    train, validation = synthetic_split.train, synthetic_split.validation
    model = registry()["ease"].from_params({}, train.n_users, train.n_items)
    report = model.fit(train, make_validator(train, validation))
    assert 0 < report.history[0]["val_NDCG@10"] <= 1


def test_ease_beats_most_popular_on_synthetic_data(synthetic_split):
    ndcg = {}
    for name in ("most_popular", "ease"):
        model, _ = workflow.train(name, {}, synthetic_split)
        ndcg[name] = workflow.evaluate(model, synthetic_split, None).metrics["full"]["NDCG@10"]
    assert ndcg["ease"] > 1.3 * ndcg["most_popular"]


@pytest.mark.parametrize(
    "name", ["sampled_uniform", "top10", "sampled_random_5", "sampled_uniform_0"]
)
def test_unknown_protocol_is_a_config_error(name):
    with pytest.raises(ConfigError, match=r"parameter evaluation\.protocols"):
        build_config(EvaluationConfig, {"protocols": ["full", name]}, "evaluation")


def test_given_protocol_without_given_negatives_is_a_config_error(evaluation_setup):
    _, data, _, _ = evaluation_setup
    settings = EvaluationConfig(protocols=("sampled_given_99",))
    with pytest.raises(ConfigError, match="needs negatives from the source"):
        build_candidates(data, settings)


def test_histories_padding_and_append(synthetic_split):
    train, validation = synthetic_split.train, synthetic_split.validation
    joined = train.histories.append(validation.histories)
    user = 3
    expected = np.concatenate([train.histories.of(user), validation.histories.of(user)])
    np.testing.assert_array_equal(joined.of(user), expected)
    padded = joined.padded(np.array([user]), max_len=5)
    np.testing.assert_array_equal(padded[0], expected[-5:] + 1)


def test_given_candidates_rank_each_distinct_item_once(tmp_path, project_copy):
    """NCF files: the positive and repeated negatives among the 99 count once, as the
    authors' evaluation (an item -> score map) counts them."""
    from tests.test_pipeline import dataset_folder, kedro_run

    rng = np.random.default_rng(0)
    n_users, n_items = 30, 60
    train_lines, test_lines, negative_lines = [], [], []
    for user in range(n_users):
        items = rng.choice(n_items, size=12, replace=False)
        train_lines += [f"{user}\t{i}\t5\t{t}" for t, i in enumerate(items[:-1])]
        test_lines.append(f"{user}\t{items[-1]}\t5\t99")
        negatives = list(rng.choice(np.setdiff1d(np.arange(n_items), items), size=4))
        negatives.append(items[-1] if user % 2 else negatives[0])  # positive or a repeat
        negative_lines.append(f"({user},{items[-1]})\t" + "\t".join(map(str, negatives)))
    prefix = tmp_path / "toy"
    (tmp_path / "toy.train.rating").write_text("\n".join(train_lines) + "\n")
    (tmp_path / "toy.test.rating").write_text("\n".join(test_lines) + "\n")
    (tmp_path / "toy.test.negative").write_text("\n".join(negative_lines) + "\n")
    params = {
        "data": {"source": "ncf_paper", "path": str(prefix)},
        "split": {"method": "given", "min_user_interactions": 0},
        "evaluation": {"protocols": ["full", "sampled_given_5"]},
    }
    kedro_run(project_copy, "most_popular", params)
    reporting = dataset_folder(project_copy, "08_reporting", params)
    metrics = json.loads((reporting / "metrics.json").read_text())
    given = metrics["models"]["most_popular"]["metrics"]["sampled_given_5"]
    # at most 5 distinct competitors incl. the target: a rank beyond 5 is impossible
    assert given["HR@5"] == 1.0
    assert metrics["dataset"]["test_interactions"] == n_users

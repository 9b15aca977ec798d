"""Mult-VAE and Mult-DAE (Liang et al. 2018): shapes, training, KL annealing, config errors,
a learning test on ML-100K and an end-to-end Kedro run."""

import json

import numpy as np
import pytest
import torch

from neurec import workflow
from neurec.benchmark import parse_model_spec
from neurec.datasets import load_model, save_model
from neurec.errors import ConfigError
from neurec.interactions import Histories
from neurec.models import registry
from neurec.models.autoencoder import multinomial_nll, training_users
from neurec.models.multvae import kl_weight
from neurec.pipeline_registry import register_pipelines
from neurec.recommend import recommend, recommend_users
from tests.conftest import make_split
from tests.test_pipeline import SMALL_DATA, dataset_folder, kedro_run

TINY = {"hidden_dims": [32], "latent_dim": 8, "batch_size": 100}
MODELS = ("multvae", "multdae")


def build(name, train, **params):
    return registry()[name].from_params({**TINY, **params}, train.n_users, train.n_items)


@pytest.mark.parametrize("name", MODELS)
def test_batches_and_scores_have_the_right_shapes(name, synthetic_split):
    train = synthetic_split.train
    model = build(name, train)
    batches = list(model.training_batches(train, np.random.default_rng(0)))
    assert len(batches) == int(np.ceil(len(training_users(train)) / 100))
    rows = batches[0][0]
    assert rows.shape == (100, train.n_items) and rows.dtype == torch.float32
    assert set(rows.unique().tolist()) == {0.0, 1.0}
    assert torch.isfinite(model.batch_loss(batches[0]))
    users = np.array([3, 1, 4])
    assert model.score(users, train.histories).shape == (3, train.n_items)
    candidates = np.array([[0, 5, 7, 9], [1, 2, 3, 4], [9, 8, 7, 6]])
    full = model.score(users, train.histories)
    assert torch.equal(
        model.score(users, train.histories, candidates), full.gather(1, torch.as_tensor(candidates))
    )


@pytest.mark.parametrize("name", MODELS)
def test_scores_are_read_from_the_given_history_not_the_user_id(name, synthetic_split, tmp_path):
    split, train = synthetic_split, synthetic_split.train
    model = build(name, train, epochs=2)
    model.fit(train)
    history = train.histories.of(0)
    # users 0 and 1 hold the same items, user 2 (however it trained) only one of them
    histories = Histories(
        indptr=np.array([0, len(history), 2 * len(history), 2 * len(history) + 1]),
        items=np.concatenate([history, history, history[:1]]),
        n_items=train.n_items,
    )
    scores = model.score(np.arange(3), histories)
    assert torch.equal(scores[0], scores[1])
    assert not torch.allclose(scores[0], scores[2])
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.config == model.config and loaded.config.hidden_dims == (32,)
    assert torch.equal(loaded.score(np.arange(3), histories), scores)
    # served to a user the model never saw, user 0's items give user 0's recommendations
    popularity = split.popularity()
    source_ids = split.item_index["source_id"].to_numpy()
    new_user = recommend(
        model, source_ids[history].tolist(), 10, item_index=split.item_index, popularity=popularity
    )
    known, _ = recommend_users(model, np.array([0]), train.histories, 10, popularity, [True])
    assert new_user.strategy == "model" and new_user.items == source_ids[known[0]].tolist()


@pytest.mark.parametrize("name", MODELS)
def test_training_lowers_the_loss_below_the_popularity_distribution(name, synthetic_split):
    train = synthetic_split.train
    x = torch.as_tensor(train.matrix().toarray())
    popularity = x.sum(dim=0) / x.sum()
    popularity_nll = float(-(x * popularity.log()).sum(dim=1).mean())
    model = build(name, train, epochs=10, learning_rate=1e-2)

    def reconstruction_nll():  # deterministic: no dropout, the VAE decodes its mean
        model.module.eval()
        with torch.no_grad():
            return float(multinomial_nll(model.module(x), x))

    before = reconstruction_nll()
    losses = [entry["loss"] for entry in model.fit(train).history]
    assert losses[-1] < losses[0], losses
    assert reconstruction_nll() < min(before, popularity_nll), (before, popularity_nll)


def test_kl_weight_rises_linearly_to_beta_in_anneal_epochs():
    assert kl_weight(0.2, 10, 0.0) == 0.0
    assert kl_weight(0.2, 10, 2.5) == pytest.approx(0.05)
    assert kl_weight(0.2, 10, 5.0) == pytest.approx(0.1)
    assert kl_weight(0.2, 10, 10.0) == pytest.approx(0.2)
    assert kl_weight(0.2, 10, 150.0) == pytest.approx(0.2)


def test_training_batches_carry_the_schedule_per_update(synthetic_split):
    train = synthetic_split.train
    model = build("multvae", train, batch_size=200, beta=0.4, anneal_epochs=2)
    rng = np.random.default_rng(0)
    per_epoch = int(np.ceil(len(training_users(train)) / 200))  # 800 users: 4 an epoch
    seen = [float(b[1]) for _ in range(3) for b in model.training_batches(train, rng)]
    expected = [0.4 * min(1.0, step / (2 * per_epoch)) for step in range(3 * per_epoch)]
    assert seen == pytest.approx(expected)
    assert seen[2 * per_epoch] == pytest.approx(0.4)  # the cap arrives after anneal_epochs
    fresh = build("multvae", train, batch_size=200, epochs=2)
    fresh.fit(train)  # the loop makes one update per batch, and the clock counts each
    assert fresh.updates == 2 * per_epoch


@torch.no_grad()
def test_vae_loss_adds_beta_times_kl_and_dae_loss_is_the_likelihood_alone(synthetic_split):
    train = synthetic_split.train
    x = next(build("multdae", train).training_batches(train, np.random.default_rng(0)))[0]
    dae = build("multdae", train)
    dae.module.eval()  # no dropout: the loss is deterministic
    assert torch.equal(dae.batch_loss((x,)), multinomial_nll(dae.module(x), x))
    assert dae.module.encoder[-1].out_features == dae.config.latent_dim  # no variance head

    vae = build("multvae", train)
    vae.module.eval()
    losses = {}
    for beta in (0.0, 0.5):
        torch.manual_seed(0)  # the same reparameterisation noise for both
        losses[beta] = float(vae.batch_loss((x, torch.tensor(beta))))
    mean, log_var = vae.module.encode(x)
    kl = float(0.5 * (log_var.exp() + mean.pow(2) - 1 - log_var).sum(dim=1).mean())
    assert kl > 0
    assert losses[0.5] - losses[0.0] == pytest.approx(0.5 * kl, rel=1e-3)


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("multvae", {"beta": -0.1}, "multvae.beta"),
        ("multvae", {"anneal_epochs": 0}, "multvae.anneal_epochs"),
        ("multvae", {"dropout": 1.0}, "multvae.dropout"),
        ("multdae", {"latent_dim": 0}, "multdae.latent_dim"),
        ("multdae", {"hidden_dims": [600, -1]}, r"multdae.hidden_dims\[1\]"),
        ("multdae", {"beta": 0.2}, "multdae.beta"),  # the DAE has no KL weight
    ],
)
def test_bad_parameters_name_the_field(name, params, field):
    with pytest.raises(ConfigError, match=rf"parameter {field}"):
        registry()[name].from_params(params, 10, 20)


def test_benchmark_takes_a_list_valued_override():
    spec = "multvae:hidden_dims=[600,300],beta=0.1"
    assert parse_model_spec(spec) == ("multvae", {"hidden_dims": [600, 300], "beta": 0.1})
    config = registry()["multvae"].from_params(parse_model_spec(spec)[1], 10, 20).config
    assert config.hidden_dims == (600, 300)


@pytest.mark.slow
def test_multvae_beats_most_popular_on_ml100k(shared_data):
    path = shared_data / "ml-100k" / "u.data"
    if not path.exists():
        pytest.skip(f"{path} not present")
    split = make_split({"source": "movielens", "path": str(path)})

    def full_ndcg(name, params):
        model, _ = workflow.train(name, params, split)  # best epoch on validation
        return workflow.evaluate(model, split, None).metrics["full"]["NDCG@10"]

    popular = full_ndcg("most_popular", {})
    # paper architecture; 100-user batches give 10 updates an epoch on 943 users
    vae = full_ndcg("multvae", {"epochs": 25, "batch_size": 100, "anneal_epochs": 10})
    assert vae > 1.3 * popular, (vae, popular)


@pytest.mark.slow
def test_kedro_run_of_the_multvae_pipeline(project_copy):
    params = {**SMALL_DATA, "multvae": {**TINY, "epochs": 3, "anneal_epochs": 2}}
    kedro_run(project_copy, "multvae", params)
    reporting = dataset_folder(project_copy, "08_reporting", params)
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert list(metrics["models"]) == ["multvae"]
    result = metrics["models"]["multvae"]
    assert result["epochs"] == 3 and 1 <= result["best_epoch"] <= 3
    assert set(result["metrics"]) == {"full", "sampled_uniform_99", "sampled_popularity_100"}
    saved = list((dataset_folder(project_copy, "06_models", params) / "multvae.pt").glob("*/*.pt"))
    assert len(saved) == 1 and load_model(saved[0]).config.hidden_dims == (32,)
    assert "multvae" in (reporting / "report.md").read_text()
    family = register_pipelines()["autoencoders"]
    assert {"multvae.train", "multdae.train"} <= {n.name for n in family.nodes}

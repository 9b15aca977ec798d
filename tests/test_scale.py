"""Scale: bounded evaluation memory, EASE's item limit, stops before training, the generator."""

import argparse
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import chisquare

from neurec import scale_benchmark
from neurec.errors import ConfigError
from neurec.evaluation import FULL, score_protocol
from neurec.interactions import Interactions
from neurec.models import registry
from neurec.models.base import Recommender
from neurec.scale_benchmark import STAGES, slopes
from neurec.sources.synthetic import SyntheticConfig, Taste, generate

CLEAR_REFS = Path("/proc/self/clear_refs")


class Embeddings(Recommender):
    """Random user and item vectors: an embedding model's scoring, nothing learned."""

    name = "embeddings"
    config_class = dict

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__({}, n_users, n_items)
        generator = torch.Generator().manual_seed(0)
        self.users = torch.randn(n_users, 16, generator=generator)
        self.items = torch.randn(n_items, 16, generator=generator)

    def fit(self, train, validator=None, pretrained=None):
        raise NotImplementedError

    def score(self, users, histories, items=None):
        return self.users[torch.as_tensor(users)] @ self.items.T

    def state(self):
        return {}

    def load_state(self, state: Mapping) -> None:
        pass


def random_histories(n_users: int, n_items: int, per_user: int, seed: int):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, size=len(users))
    return Interactions(users, items, n_users, n_items).histories


def peak_rss_growth_mb(run) -> float:
    """Peak resident memory while ``run()`` runs, above the resident memory before it."""

    def status(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
        raise KeyError(key)

    CLEAR_REFS.write_text("5")  # the peak (VmHWM) restarts from the current RSS
    before = status("VmRSS:")
    run()
    return status("VmHWM:") - before


def growth_by_users(chunk: int | None) -> dict[int, float]:
    """Peak memory growth of full-ranking 1000 and 4000 users over 20k items, in MB.

    ``chunk=None`` scores all users at once (a users x items matrix), to show the measure sees it.
    """
    n_items = 20_000
    growth = {}
    for n_users in (1000, 4000):
        history = random_histories(n_users, n_items, 20, seed=1)
        targets = random_histories(n_users, n_items, 1, seed=2)
        model = Embeddings(n_users, n_items)
        run = partial(
            score_protocol,
            model,
            history,
            targets,
            np.arange(n_users),
            FULL,
            (10,),
            chunk or n_users,
        )
        run()  # warm up the allocator, so both sizes start alike
        growth[n_users] = peak_rss_growth_mb(run)
    return growth


def measured_growth(chunk: int | None) -> dict[int, float]:
    """``growth_by_users`` in a fresh process whose malloc hands large blocks back at once.

    glibc raises its mmap threshold after the first large free, so freed score chunks may stay
    resident and the peak would vary from run to run (about 1 run in 8 in-process); a fixed
    threshold makes resident memory follow live memory.
    """
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import test_scale; "
        "print(json.dumps(test_scale.growth_by_users(json.loads(sys.argv[2]))))"
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), json.dumps(chunk)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {int(k): v for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


@pytest.mark.skipif(not CLEAR_REFS.exists(), reason="needs Linux /proc peak-memory reset")
def test_full_ranking_memory_does_not_grow_with_the_number_of_users():
    # 20k items: a users x items float32 matrix is 80 MB per 1000 users, the chunk of 250
    # users' scores and masks a few tens of MB whatever the number of users
    unchunked = measured_growth(None)
    # the measure sees a dense matrix: the 3000 extra users' scores add 240 MB
    assert unchunked[4000] > unchunked[1000] + 200, unchunked
    chunked = measured_growth(250)
    assert chunked[4000] < chunked[1000] + 40, chunked


def test_ease_stops_before_training_when_its_matrix_exceeds_the_memory_limit():
    with pytest.raises(ConfigError, match=r"ease\.max_items.*27000 items need 14\.6 GB"):
        registry()["ease"].from_params({}, 138_000, 27_000)
    # the popular-items limit lifts it
    registry()["ease"].from_params({"max_items": 15_000}, 138_000, 27_000)


def test_ease_with_max_items_keeps_the_popular_items_and_ranks_the_others_last(synthetic_split):
    train = synthetic_split.train
    model = registry()["ease"].from_params({"max_items": 50}, train.n_users, train.n_items)
    model.fit(train)
    counts = train.item_counts()
    kept = model.kept.numpy()
    assert len(kept) == 50 and counts[kept].min() >= np.delete(counts, kept).max()
    scores = model.score(np.arange(10), train.histories)
    others = np.setdiff1d(np.arange(train.n_items), kept)
    assert torch.isneginf(scores[:, others]).all() and torch.isfinite(scores[:, kept]).all()
    assert model.weights.shape == (50, 50)


def test_gsasrec_stops_when_a_batch_of_all_item_scores_would_not_fit():
    params = {"loss": "gbce", "max_len": 200}
    with pytest.raises(ConfigError, match=r"sasrec\.batch_size.*sasrec\.loss: sampled_ce"):
        registry()["sasrec"].from_params(params, 138_000, 60_000)
    registry()["sasrec"].from_params(params, 138_000, 3_000)  # ML-1M's catalogue fits


@pytest.mark.parametrize(
    ("name", "params"), [("sasrec", {"loss": "ce"}), ("rnn", {}), ("bert4rec", {})]
)
def test_full_softmax_models_build_at_any_catalogue_size(name, params):
    # the chunked cross-entropy holds a chunk of logits, never a batch x length x items one
    registry()[name].from_params({**params, "max_len": 200}, 138_000, 60_000)


def test_generator_keeps_items_distinct_when_histories_cover_half_the_catalogue():
    # lengths up to n_items / 2: the taste draws run out and are renewed for many users
    config = SyntheticConfig(n_users=300, n_items=60, min_length=20, mean_length=25, seed=3)
    table = generate(config)
    per_user = table.groupby("user")
    assert (per_user["item"].nunique() == per_user.size()).all()
    assert per_user.size().min() >= 20 and per_user.size().max() <= 30
    assert table["item"].between(1, 60).all() and table["timestamp"].is_monotonic_increasing
    # times increase within a user in the order the items were generated
    assert table.equals(generate(config))


def test_taste_orders_are_draws_without_replacement_from_the_softmax():
    # a peaked taste over 10 items: 4 items from 24 inverse-CDF draws often repeat too much,
    # so many orders are completed by Gumbel keys; the ordered first three items must follow
    # p_a * p_b / (1 - p_a) * p_c / (1 - p_a - p_b) all the same
    rng = np.random.default_rng(0)
    log_popularity = np.log(1.0 / np.arange(1, 11))
    user, items = np.array([[6.0, -4.0]]), rng.normal(size=(10, 2))
    taste = Taste(log_popularity, user, items)
    logits = log_popularity + user[0] @ items.T
    p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    n = 100_000
    orders = taste.orders(rng, np.zeros(n, dtype=np.int64), np.full(n, 4))
    ordered = np.sort(orders, axis=1)
    assert (ordered[:, 1:] != ordered[:, :-1]).all()
    observed, expected = [], []
    counts = pd.Series(orders[:, 0] * 100 + orders[:, 1] * 10 + orders[:, 2]).value_counts()
    for a, b, c in itertools.permutations(range(10), 3):
        observed.append(counts.get(a * 100 + b * 10 + c, 0))
        expected.append(n * p[a] * p[b] / (1 - p[a]) * p[c] / (1 - p[a] - p[b]))
    observed, expected = np.array(observed), np.array(expected)
    big = expected > 5  # the rare triples pooled into one cell
    observed = np.r_[observed[big], observed[~big].sum()]
    expected = np.r_[expected[big], expected[~big].sum()]
    assert chisquare(observed, expected * n / expected.sum()).pvalue > 0.01


def test_slopes_are_log_log_least_squares_per_stage():
    rows = [
        {"source": "synthetic", "interactions": n, **{f"{s}_s": n / 1e3 for s in STAGES}}
        for n in (1e5, 1e6, 1e7)
    ]
    for row in rows:
        row["evaluate_s"] = (row["interactions"] / 1e5) ** 2  # quadratic
    slope = slopes(rows)
    assert slope["split"] == pytest.approx(1.0) and slope["evaluate"] == pytest.approx(2.0)


def test_scale_benchmark_writes_the_cost_curve_of_each_stage(tmp_path):
    out = tmp_path / "curve"
    options = {"--sizes": "20k", "--threads": "1", "--label": "test", "--out": str(out)}
    arguments = [part for pair in options.items() for part in pair]
    overrides = ["--model-override", 'ials={"factors": 4}', "--epoch-share", "ials=0.5"]
    protocols = ["--protocols", "full", "sampled_uniform_9"]
    scale_benchmark.main([*arguments, "--model", "most_popular", "ials", *protocols, *overrides])
    table = pd.read_csv(out / "cost_curve.csv")
    assert list(table["model"]) == ["most_popular", "ials"]
    assert table["interactions"].iloc[0] > 15_000 and (table[[f"{s}_s" for s in STAGES]] > 0).all(
        axis=None
    )
    # the data stages ran once for both models; each model trained and evaluated on its own
    assert table["split_s"].nunique() == 1
    models = json.loads((out / "results.json").read_text())["results"][0]["models"]
    assert all(set(models[m]["stages"]) == {"train_epoch", "evaluate", "report"} for m in models)
    assert models["ials"]["params"] == {"factors": 4, "epochs": 1}
    assert models["most_popular"]["params"] == {}
    # half the users trained: the epoch's seconds doubled estimate a whole epoch
    assert list(table["epoch_share"]) == [1.0, 0.5]
    trained = [models[m]["trained_users"] for m in ("most_popular", "ials")]
    assert trained[0] == table["users"].iloc[0] and 0.3 < trained[1] / trained[0] < 0.7
    doubled = 2 * table["train_epoch_s"].iloc[1]
    assert table["s_per_epoch"].iloc[1] == pytest.approx(doubled, abs=0.1)
    text = (out / "cost_curve.md").read_text()
    assert "torch threads: 1" in text and "(test)" in text and (out / "cost_curve.png").exists()


def test_model_overrides_name_their_model_or_apply_to_all():
    assert scale_benchmark.parse_override('sasrec={"loss": "sampled_ce"}') == (
        "sasrec",
        {"loss": "sampled_ce"},
    )
    assert scale_benchmark.parse_override('{"a": "x=y"}') == (None, {"a": "x=y"})
    with pytest.raises(argparse.ArgumentTypeError, match="model-override"):
        scale_benchmark.parse_override("ials=[1]")
    with pytest.raises(argparse.ArgumentTypeError, match="epoch-share"):
        scale_benchmark.parse_share("sasrec=1.5")
    shares = argparse.Namespace(epoch_share=[(None, 0.5), ("sasrec", 0.1)])
    assert scale_benchmark.epoch_share(shares, "sasrec") == 0.1
    assert scale_benchmark.epoch_share(shares, "ials") == 0.5
    overrides = [(None, {"seed": 3, "epochs": 2}), ("ials", {"factors": 4, "seed": 5})]
    args = argparse.Namespace(model_override=overrides)
    assert scale_benchmark.model_params_for(args, "ials") == {"seed": 5, "epochs": 2, "factors": 4}
    assert scale_benchmark.model_params_for(args, "sasrec") == {"seed": 3, "epochs": 2}

"""The report: intervals and significance on planted data, and what a run writes."""

import json

import numpy as np
import pandas as pd
import plotly.io
import pytest

from neurec.errors import ConfigError
from neurec.models import base
from neurec.pipelines.reporting.nodes import build_metrics, report
from neurec.pipelines.reporting.plots import training_curves_figure
from tests.test_pipeline import SMALL_DATA, dataset_folder, kedro_run

STATS = {
    "users": 400,
    "items": 50,
    "interactions_raw": 4000,
    "density": 0.2,
    "train_interactions": 3200,
    "validation_interactions": 400,
    "test_interactions": 400,
    "test_users": 400,
}
EVALUATION = {"protocols": ["full", "sampled_uniform_99"], "seed": 1}
SETTINGS = {"bootstrap_resamples": 500, "permutation_resamples": 2000}
KEY = "synthetic-400u-50i-s1_loo5-0a1b2c"


def fake_model(hit_rate, rng, history=None, like=None):
    """Results and per-user table of a model hitting the target with ``hit_rate``, or
    of one scoring each user about as ``like`` (a per-user table) does."""
    frames, summary = [], {}
    for protocol in EVALUATION["protocols"]:
        if like is None:
            hits = (rng.random(400) < hit_rate).astype(float)
            ndcg = hits * rng.uniform(0.3, 1.0, 400)
        else:
            hits = like.loc[like["protocol"] == protocol, "HR@10"].to_numpy()
            ndcg = like.loc[like["protocol"] == protocol, "NDCG@10"].to_numpy()
            ndcg = np.clip(ndcg + rng.normal(0, 0.05, 400) * hits, 0, 1)
        frame = pd.DataFrame({"protocol": protocol, "user": np.arange(400)})
        frame["HR@10"], frame["NDCG@10"], frame["MRR"] = hits, ndcg, ndcg * 0.9
        frames.append(frame)
        summary[protocol] = {c: float(frame[c].mean()) for c in ("HR@10", "NDCG@10", "MRR")}
    result = {
        "train_seconds": 1.0,
        "epochs": len(history or [1]),
        "best_epoch": 1,
        "evaluation_seconds": 0.1,
        "metrics": summary,
        "history": history or [{"epoch": 1, "seconds": 0.1, "val_NDCG@10": 0.1}],
    }
    return result, pd.concat(frames, ignore_index=True)


def metrics_of(models):
    inputs = {}
    for name, (result, table) in models.items():
        inputs[f"{name}__results"], inputs[f"{name}__user_metrics"] = result, table
    return build_metrics(KEY, STATS, EVALUATION, SETTINGS, **inputs)


@pytest.fixture(scope="module")
def planted():
    """ials a hair below ease, most_popular far worse: only it differs significantly."""
    rng = np.random.default_rng(0)
    curve = [{"epoch": e, "loss": 1.0 / e, "val_NDCG@10": 0.1 * e} for e in (1, 2, 3)]
    ease = fake_model(0.5, rng)
    return metrics_of(
        {
            "ease": ease,
            "ials": fake_model(0.5, rng, curve, like=ease[1]),
            "most_popular": fake_model(0.1, rng),
        }
    )


def test_metrics_keep_the_contract_and_add_intervals_and_history(planted):
    assert {"dataset", "protocols", "models"} <= set(planted)
    for values in planted["models"].values():
        assert {"train_seconds", "epochs", "metrics", "history"} <= set(values)
        for protocol, scores in values["metrics"].items():
            for metric, value in scores.items():
                low, high = values["confidence_intervals"][protocol][metric]
                assert low <= value <= high
    json.dumps(planted)  # everything is JSON


def test_only_the_planted_difference_is_significant(planted):
    test = planted["significance"]
    assert test["baseline"] == "ease" and test["chosen_on"] == "full"
    for protocol in EVALUATION["protocols"]:
        results = test["protocols"][protocol]
        assert set(results) == {"ials", "most_popular"}
        assert results["most_popular"]["significant"]
        assert results["most_popular"]["difference"] < 0
        assert not results["ials"]["significant"]
    text, page, *figures = report(planted)
    assert "significantly worse than ease: most_popular" in text
    assert "no significant difference from ease: ials" in text
    assert "Holm" in text
    assert page.count("data:image/png;base64,") == 3 and "<table>" in page
    assert len(figures) == 3


def test_training_curves_draw_losses_on_a_log_scale(planted):
    loss_axis, validation_axis = training_curves_figure(planted).axes[:2]
    assert len(loss_axis.lines) == 1 and loss_axis.get_yscale() == "log"
    # ials as a curve plus its best-epoch star, the one-pass models as reference lines
    assert len(validation_axis.lines) == 4


def test_without_a_baseline_the_report_says_so(monkeypatch):
    toy = type("Toy", (), {"family": "toy"})
    monkeypatch.setitem(base._REGISTRY, "toy", toy)
    metrics = metrics_of({"toy": fake_model(0.3, np.random.default_rng(1))})
    assert metrics["significance"]["baseline"] is None
    assert "No model of family `baselines`" in report(metrics)[0]


def test_bad_report_settings_name_the_parameter():
    with pytest.raises(ConfigError, match=r"report\.confidence"):
        build_metrics(KEY, STATS, EVALUATION, {"confidence": 95})
    with pytest.raises(ConfigError, match=r"report\.resamples"):
        build_metrics(KEY, STATS, EVALUATION, {"resamples": 10})


def test_a_run_writes_the_report_its_charts_and_plotly_previews(project_copy):
    kedro_run(project_copy, "baselines", SMALL_DATA)
    reporting = dataset_folder(project_copy, "08_reporting", SMALL_DATA)
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert set(metrics["significance"]["protocols"]["full"]) == {"most_popular", "ials"}
    text = (reporting / "report.md").read_text()
    for section in ("## Test metrics: `full`", "## Significance", "## Training curves"):
        assert section in text
    for chart in ("training_curves.png", "metrics_at_k.png", "metrics.png"):
        assert f"]({chart})" in text
        assert (reporting / chart).stat().st_size > 1000
    page = (reporting / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "base64," in page
    for chart in ("training_curves.json", "metrics_at_k.json"):
        figure = plotly.io.read_json(reporting / chart)
        assert {trace.name for trace in figure.data} == set(metrics["models"])

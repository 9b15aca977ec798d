"""The report: intervals and significance on planted data, results kept across runs on
one split, the charts for many models, and what a run writes."""

import base64
import fnmatch
import importlib.resources
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io
import pytest
import tomllib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import BarContainer

from neurec.errors import ConfigError
from neurec.evaluation import EvaluationConfig
from neurec.models import base
from neurec.models.base import build_config
from neurec.pipelines.reporting.hooks import report_location
from neurec.pipelines.reporting.nodes import build_metrics, report
from neurec.report import plots
from neurec.report.archive import ResultsArchive, StudyArchive, with_earlier_runs
from neurec.report.results import ModelRun, ReportConfig, assemble
from tests.conftest import PROJECT_ROOT
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
SPLIT = "400x50:0123456789ab"
KEY = "synthetic-400u-50i-s1_loo5-0a1b2c"


def fake_model(hit_rate, rng, history=None, like=None, split=SPLIT, parameters=None):
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
    history = history or [{"epoch": 1, "seconds": 0.1, "val_NDCG@10": 0.1}]
    result = {
        "train_seconds": 1.0,
        "epochs": len(history),
        "best_epoch": 1,
        "evaluation_seconds": 0.1,
        "metrics": summary,
        "history": history,
        "split_fingerprint": split,
        "evaluation_seed": EVALUATION["seed"],
        "finished_at": "2026-12-01T09:30:00+00:00",
        "parameters": parameters or {},
    }
    return result, pd.concat(frames, ignore_index=True)


@dataclass
class ToyConfig:
    epochs: int = 1


def toy_model(name):
    """A registry entry for a model of family "toy" (not a baseline)."""
    return type(name, (), {"family": "toy", "config_class": ToyConfig})


def metrics_of(models, earlier=()):
    """metrics.json of ``models`` trained in this run and ``earlier`` ones from before."""
    runs = {
        name: ModelRun(result, table, this_run=name not in earlier)
        for name, (result, table) in models.items()
    }
    evaluation = build_config(EvaluationConfig, EVALUATION, "evaluation")
    return assemble(STATS, evaluation, build_config(ReportConfig, SETTINGS, "report"), runs)


@pytest.fixture(scope="module")
def planted():
    """ials a hair below ease, most_popular far worse: only it differs significantly."""
    rng = np.random.default_rng(0)
    curve = [{"epoch": e, "loss": 1.0 / e, "val_NDCG@10": 0.1 * e} for e in (1, 2, 3)]
    ease = fake_model(0.5, rng)
    return metrics_of(
        {
            "ease": ease,
            "ials": fake_model(0.5, rng, curve, like=ease[1], parameters={"epochs": 12}),
            "most_popular": fake_model(0.1, rng),
        }
    )


def test_metrics_keep_the_contract_and_add_intervals_and_history(planted):
    assert {"dataset", "protocols", "models"} <= set(planted)
    for values in planted["models"].values():
        assert {"train_seconds", "epochs", "best_epoch", "evaluation_seconds"} <= set(values)
        assert {"metrics", "family", "confidence_intervals", "history"} <= set(values)
        assert {"finished_at", "parameters", "this_run", "stopped_by"} <= set(values)
        for protocol, scores in values["metrics"].items():
            for metric, value in scores.items():
                low, high = values["confidence_intervals"][protocol][metric]
                assert low <= value <= high
    assert planted["split_fingerprint"] == SPLIT
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
    assert page.startswith("<!DOCTYPE html>") and "<title>Results</title>" in page
    assert len(figures) == 3


def test_the_markdown_tables_are_whole(planted):
    text = report(planted)[0]
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert rows, "no tables"
    tables = re.split(r"\n(?!\|)", "\n".join(text.splitlines()))
    for table in (t for t in tables if t.startswith("|")):
        widths = {line.count("|") for line in table.splitlines()}
        assert len(widths) == 1, f"ragged table:\n{table}"
    assert "{{" not in text and "{%" not in text


def test_training_curves_draw_losses_on_a_log_scale(planted):
    loss_axis, validation_axis = plots.training_curves_figure(planted).axes[:2]
    assert len(loss_axis.lines) == 1 and loss_axis.get_yscale() == "log"
    # ials as a curve plus its best-epoch star, the one-pass models as reference lines
    assert len(validation_axis.lines) == 4


def test_without_a_baseline_the_report_names_the_command_that_trains_one(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, "toy", toy_model("toy"))
    metrics = metrics_of({"toy": fake_model(0.3, np.random.default_rng(1))})
    assert metrics["significance"]["baseline"] is None
    text = report(metrics)[0]
    assert "No model of family `baselines` was ever trained on this split" in text
    assert "`kedro run --pipelines=baselines`" in text


def test_bad_report_settings_name_the_parameter(tmp_path):
    archive = ResultsArchive(str(tmp_path / "*.json"), str(tmp_path / "*.parquet"))
    studies = StudyArchive(str(tmp_path))
    with pytest.raises(ConfigError, match=r"report\.confidence"):
        build_metrics(KEY, STATS, EVALUATION, {"confidence": 95}, archive, studies)
    with pytest.raises(ConfigError, match=r"report\.resamples"):
        build_metrics(KEY, STATS, EVALUATION, {"resamples": 10}, archive, studies)


# --- a best epoch that is the last one ----------------------------------------------------


def test_the_report_says_when_the_epoch_budget_stopped_a_model():
    rng = np.random.default_rng(2)
    rising = [{"epoch": e, "loss": 1.0 / e, "val_NDCG@10": 0.1 * e} for e in (1, 2, 3)]
    budget, early, one_pass = (
        fake_model(0.4, rng, rising, parameters={"epochs": 3}),
        fake_model(0.4, rng, rising, parameters={"epochs": 10}),
        fake_model(0.4, rng),
    )
    budget[0]["best_epoch"] = 3
    early[0]["best_epoch"] = 1  # stopped after patience 2
    metrics = metrics_of({"ials": budget, "gmf": early, "ease": one_pass})
    models = metrics["models"]
    assert [models[m]["stopped_by"] for m in ("ials", "gmf", "ease")] == [
        "epoch_budget",
        "early_stopping",
        "one_pass",
    ]
    assert [m for m, v in models.items() if v["best_epoch_is_last"]] == ["ials"]
    text = report(metrics)[0]
    assert "Best epoch = last epoch for ials: the epoch budget stopped it" in text
    assert "| ials | 1.0 | 3 (3) | epoch budget (best = last) |" in text
    assert "| gmf | 1.0 | 3 (1) | early stopping |" in text


# --- results kept across runs on one split -------------------------------------------------


def save_version(archive, model, version, result, table):
    """What Kedro's versioned datasets write, <file>/<version>/<file name>; no per-user
    table when ``table`` is None."""

    def target(pattern):
        path = Path(pattern.replace("*", model))
        (path / version).mkdir(parents=True)
        return path / version / path.name

    target(archive.results).write_text(json.dumps(result))
    if table is not None:
        table.to_parquet(target(archive.user_metrics))


@pytest.fixture
def archive(tmp_path):
    folder = tmp_path / "07_model_output"
    return ResultsArchive(f"{folder}/*_results.json", f"{folder}/*_user_metrics.parquet")


def test_a_run_keeps_the_latest_earlier_results_of_other_models_on_the_same_split(archive):
    rng = np.random.default_rng(3)
    old_ease, new_ease, other_split = (
        fake_model(0.3, rng),
        fake_model(0.5, rng),
        fake_model(0.9, rng, split="9x9:ffffffffffff"),
    )
    save_version(archive, "ease", "2026-12-01T09.00.00.000Z", *old_ease)
    save_version(archive, "ease", "2026-12-01T10.00.00.000Z", *new_ease)
    save_version(archive, "ease", "2026-12-01T11.00.00.000Z", *other_split)  # newest
    save_version(archive, "most_popular", "2026-12-01T12.00.00.000Z", fake_model(0.2, rng)[0], None)
    save_version(archive, "not_a_model", "2026-12-01T12.00.00.000Z", *fake_model(0.2, rng))
    stale_gmf = fake_model(0.1, rng)
    save_version(archive, "gmf", "2026-12-01T08.00.00.000Z", *stale_gmf)
    assert archive.models() == ["ease", "gmf", "most_popular", "not_a_model"]

    gmf = fake_model(0.4, rng)  # this run's gmf replaces the saved one
    runs = with_earlier_runs({"gmf": ModelRun(*gmf)}, archive)
    # most_popular has no per-user metrics saved with its results: it can't be tested
    assert sorted(runs) == ["ease", "gmf"]
    assert runs["ease"].result == new_ease[0] and not runs["ease"].this_run
    assert runs["gmf"].this_run and runs["gmf"].result is gmf[0]

    metrics = assemble(
        STATS,
        build_config(EvaluationConfig, EVALUATION, "evaluation"),
        build_config(ReportConfig, SETTINGS, "report"),
        runs,
    )
    # the best baseline ever trained on this split is the reference, though this run has none
    assert metrics["significance"]["baseline"] == "ease"
    assert set(metrics["significance"]["protocols"]["full"]) == {"gmf"}
    text = report(metrics)[0]
    assert "1 from this run, 1 from earlier runs" in text
    assert "| ease | baselines | 2026-12-01 09:30 | earlier |" in text


def test_results_of_another_candidate_draw_are_not_mixed_in(archive):
    rng = np.random.default_rng(4)
    ease = fake_model(0.5, rng)
    ease[0]["evaluation_seed"] = 99
    save_version(archive, "ease", "2026-12-01T10.00.00.000Z", *ease)
    assert list(with_earlier_runs({"gmf": ModelRun(*fake_model(0.4, rng))}, archive)) == ["gmf"]


def test_an_earlier_run_with_other_protocols_shows_only_the_shared_ones():
    rng = np.random.default_rng(5)
    ease, gmf = fake_model(0.5, rng), fake_model(0.3, rng)
    ease[0]["metrics"] = {"full": ease[0]["metrics"]["full"], "sampled_uniform_9": {}}
    table = ease[1]
    ease = (ease[0], table[table["protocol"] == "full"])
    metrics = metrics_of({"ease": ease, "gmf": gmf}, earlier=("ease",))
    assert list(metrics["models"]["ease"]["metrics"]) == ["full"]
    assert set(metrics["significance"]["protocols"]) == {"full"}  # no baseline under sampled
    assert "| ease | – | – | – | – |" in report(metrics)[0]


def save_study(folder, name, split, png):
    """A study folder as neurec.tuning writes it: study.json and one chart."""
    (folder / name).mkdir(parents=True)
    summary = {
        "study": name,
        "split_fingerprint": split,
        "model": "gmf",
        "trials": {"COMPLETE": 3, "PRUNED": 2},
        "best_trial": 4,
        "best_value": 0.1234,
        "best_params": {"learning_rate": 0.003},
        "parameters_file": "conf/tuned/parameters_gmf.yml",
    }
    (folder / name / "study.json").write_text(json.dumps(summary))
    (folder / name / "optimisation_history.png").write_bytes(png)


def test_the_report_shows_the_tuning_studies_of_its_split_with_their_charts(planted, tmp_path):
    figure = plots.metrics_bar_figure(planted)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png = buffer.getvalue()
    save_study(tmp_path, "gmf.this-split", SPLIT, png)
    save_study(tmp_path, "gmf.other-split", "9x9:ffffffffffff", png)
    metrics = {**planted, "tuning": StudyArchive(str(tmp_path)).studies(SPLIT)}
    text, html = report(metrics)[:2]
    assert "## Hyper-parameter studies" in text and "other-split" not in text
    row = (
        "| gmf.this-split | gmf | 3 complete, 2 pruned | 0.1234 (trial 4) | "
        "learning_rate=0.003 | `conf/tuned/parameters_gmf.yml` |"
    )
    assert row in text
    chart = (tmp_path / "gmf.this-split" / "optimisation_history.png").resolve().as_posix()
    assert f"![optimisation history of gmf.this-split]({chart})" in text
    assert base64.b64encode(png).decode("ascii") in html and chart not in html
    assert "Hyper-parameter studies" not in report(planted)[0]  # no study: no section


def test_parameters_are_listed_where_they_differ_from_the_defaults(planted):
    text = report(planted)[0]
    assert "| ials | baselines | 2026-12-01 09:30 | this | epochs=12 |" in text
    assert "| ease | baselines | 2026-12-01 09:30 | this | defaults |" in text


# --- charts for many models -------------------------------------------------------------


@pytest.fixture
def many_models(monkeypatch):
    rng = np.random.default_rng(6)
    names = [f"model_{i:02d}" for i in range(14)]
    for name in names:
        monkeypatch.setitem(base._REGISTRY, name, toy_model(name))
    curve = [{"epoch": e, "loss": 1.0 / e, "val_NDCG@10": 0.01 * e} for e in (1, 2)]
    return metrics_of({name: fake_model(0.3, rng, curve) for name in names})


def test_every_model_has_its_own_look_and_the_legend_is_outside_the_plots(many_models):
    styles = plots.looks([f"m{i}" for i in range(40)])
    assert len({(s.colour, s.linestyle) for s in styles.values()}) == 40
    for figure in (
        plots.training_curves_figure(many_models),
        plots.metrics_at_k_figure(many_models),
        plots.metrics_bar_figure(many_models),
    ):
        FigureCanvasAgg(figure).draw()
        assert not any(axis.get_legend() for axis in figure.axes)
        (legend,) = figure.legends
        box = legend.get_window_extent()
        for axis in figure.axes:
            assert not box.overlaps(axis.get_window_extent())
    validation = plots.training_curves_figure(many_models).axes[1]
    curves = [line for line in validation.lines if line.get_label() in many_models["models"]]
    assert len({(line.get_color(), line.get_linestyle()) for line in curves}) == 14


def test_the_bar_chart_has_the_bootstrap_intervals_as_error_bars(planted):
    axis = plots.metrics_bar_figure(planted).axes[0]
    bars = [c for c in axis.containers if isinstance(c, BarContainer)]
    assert len(bars) == len(planted["protocols"])
    for container, protocol in zip(bars, planted["protocols"], strict=True):
        _, _, (vertical,) = container.errorbar.lines  # one segment per bar, low to high
        for segment, model in zip(vertical.get_segments(), planted["models"], strict=True):
            low, high = planted["models"][model]["confidence_intervals"][protocol]["NDCG@10"]
            assert segment[:, 1] == pytest.approx([low, high])


# --- shipped templates and where the report is --------------------------------------------


def test_the_templates_are_package_data():
    shipped = {p.name for p in (importlib.resources.files("neurec.report") / "templates").iterdir()}
    assert {"report.md.j2", "report.html.j2", "report.css"} <= shipped
    setup = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setup["package-data"]["neurec.report.templates"]
    for name in shipped - {"__init__.py", "__pycache__"}:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert "jinja2" in " ".join(
        tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    )


def test_the_end_of_a_run_says_where_the_report_is(tmp_path):
    page, text = tmp_path / "report.html", tmp_path / "report.md"
    assert report_location([page, text], written=True) == (
        f"report: {page} (and report.md beside it)"
    )
    assert "kedro run" in report_location([page, text], written=False)
    page.write_text("<html>")
    assert report_location([page, text], written=False).startswith("report (written by an")


def test_a_run_writes_the_report_its_charts_and_plotly_previews(project_copy, caplog):
    """A full run of the baselines, then gmf alone: the report keeps the baselines (and
    tests gmf against the best of them); the end of the run says where the report is."""
    kedro_run(project_copy, "baselines", SMALL_DATA)
    caplog.set_level("INFO", logger="neurec")
    kedro_run(project_copy, "gmf", {**SMALL_DATA, "gmf": {"epochs": 1}})
    reporting = dataset_folder(project_copy, "08_reporting", SMALL_DATA)
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert set(metrics["models"]) == {"most_popular", "ease", "ials", "gmf"}
    assert [m for m, v in metrics["models"].items() if v["this_run"]] == ["gmf"]
    assert metrics["models"]["gmf"]["parameters"]["epochs"] == 1
    assert metrics["models"]["gmf"]["stopped_by"] == "epoch_budget"
    assert metrics["significance"]["baseline"] in {"most_popular", "ease", "ials"}
    compared = set(metrics["significance"]["protocols"]["full"])
    assert compared == {"most_popular", "ease", "ials", "gmf"} - {
        metrics["significance"]["baseline"]
    }
    text = (reporting / "report.md").read_text()
    for section in (
        "## Models",
        "## Test metrics: `full`",
        "## Significance",
        "## Training curves",
    ):
        assert section in text
    assert "3 from earlier runs" in text
    for chart in ("training_curves.png", "metrics_at_k.png", "metrics.png"):
        assert f"]({chart})" in text
        assert (reporting / chart).stat().st_size > 1000
    page = (reporting / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "base64," in page
    for chart in ("training_curves.json", "metrics_at_k.json"):
        figure = plotly.io.read_json(reporting / chart)
        assert {trace.name for trace in figure.data} == set(metrics["models"])
    assert f"report: {(reporting / 'report.html').resolve()}" in caplog.text

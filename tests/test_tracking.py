"""A `kedro run` is recorded in MLflow: read it back as a person would, through MlflowClient."""

import json
import os
import re
import socket
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from neurec.datasets import load_model
from neurec.hooks import mlflow_name, source_label
from neurec.models import base, registry
from neurec.pipelines.modeling import nodes as modeling_nodes
from tests.test_pipeline import SMALL_DATA, ItemBias, dataset_folder, kedro_run


@pytest.fixture
def no_network(monkeypatch):
    """Fail (and record) any connection that would leave this machine."""
    attempts = []
    connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in (
            "127.0.0.1",
            "::1",
            "localhost",
        ):
            attempts.append(address)
            raise OSError(f"test forbids network access to {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


def runs_of(project):
    """(client, parent runs, child runs) of the project's store, oldest first."""
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("neurec")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [run for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags]
    children = [run for run in runs if MLFLOW_PARENT_RUN_ID in run.data.tags]
    return client, parents, children


@pytest.fixture
def tracked_run(monkeypatch, project_copy, no_network):
    """The toy neural model of test_pipeline (3 epochs, so a loss curve) run through Kedro."""
    monkeypatch.setitem(base._REGISTRY, ItemBias.name, ItemBias)
    (project_copy / "conf" / "base" / "parameters_item_bias.yml").write_text(
        "item_bias:\n  epochs: 3\n  patience: 3\n  batch_size: 512\n  learning_rate: 0.05\n"
        "  negatives: 2\n"
    )
    kedro_run(project_copy, "item_bias", SMALL_DATA)
    client, (run,), (child,) = runs_of(project_copy)
    experiment = client.get_experiment_by_name("neurec")
    return project_copy, client, experiment, run, child


def test_the_run_and_its_model_run_hold_parameters_curves_metrics_and_the_model(
    tracked_run, no_network
):
    project, client, experiment, run, child = tracked_run
    assert run.info.status == "FINISHED"
    # a readable name: pipeline, data source, date and time it started
    assert re.fullmatch(r"item_bias synthetic \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", run.info.run_name)
    # who ran it, so the next run can tell a run killed hard from one still going
    for tracked in (run, child):
        assert tracked.data.tags["neurec.pid"] == str(os.getpid())
        assert tracked.data.tags["neurec.host"] == socket.gethostname()
        assert tracked.data.params["torch_threads"] == str(torch.get_num_threads())
    assert mlflow.active_run() is None  # closed: the next session gets a run of its own
    assert experiment.artifact_location == (project / "mlruns").as_uri()
    assert no_network == []

    params = run.data.params  # the whole run's parameters, flattened, one per leaf
    assert params["item_bias.epochs"] == "3" and params["item_bias.negatives"] == "2"
    assert params["data.synthetic.n_users"] == "120" and params["split.method"] == "leave_one_out"
    assert "evaluation.protocols" in params

    models = dataset_folder(project, "06_models", SMALL_DATA)
    # the model's own run: under the pipeline's, named after it, its config with defaults
    assert child.data.tags[MLFLOW_PARENT_RUN_ID] == run.info.run_id
    assert child.info.run_name == "item_bias" and child.info.status == "FINISHED"
    assert child.data.tags["neurec.model"] == "item_bias"
    assert child.data.tags["neurec.family"] == "toy"
    assert child.data.params["epochs"] == "3" and child.data.params["negatives"] == "2"
    assert child.data.params["distributed.world_size"] == "1"  # a default, not in the YAML
    (saved,) = (models / "item_bias.pt").glob("*/item_bias.pt")
    fingerprint = load_model(saved).data_fingerprint
    assert fingerprint and child.data.tags["neurec.dataset"] == models.name  # the key
    assert run.data.tags["neurec.dataset"] == child.data.tags["neurec.dataset"]

    fit = json.loads((models / "item_bias_fit_report.json").read_text())
    assert len(fit["history"]) == 3
    for key, field in [("train.loss", "loss"), ("validation.NDCG_at_10", "val_NDCG@10")]:
        history = client.get_metric_history(child.info.run_id, key)
        assert [m.step for m in history] == [1, 2, 3]
        assert [m.value for m in history] == pytest.approx([e[field] for e in fit["history"]])

    reporting = dataset_folder(project, "08_reporting", SMALL_DATA)
    result = json.loads((reporting / "metrics.json").read_text())["models"]
    for protocol, values in result["item_bias"]["metrics"].items():
        for metric, value in values.items():
            assert child.data.metrics[f"{protocol}.{mlflow_name(metric)}"] == pytest.approx(value)
    assert child.data.metrics["full.NDCG_at_10"] > 0
    assert child.data.metrics["best_epoch"] == result["item_bias"]["best_epoch"]
    assert run.data.metrics == {}  # per model, in the model's run only

    report = {"metrics.json", "report.md", "report.html", "metrics.png"}
    report |= {"training_curves.png", "metrics_at_k.png"}
    listed = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert listed == {f"report/{name}" for name in report}
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["report"]
    assert client.list_artifacts(child.info.run_id) == []

    # the weights are stored once: in the child's MLflow model, which load_model reads
    (logged,) = client.search_logged_models([experiment.experiment_id])
    assert logged.source_run_id == child.info.run_id and logged.name == "item_bias"
    (version,) = client.search_model_versions("name = 'neurec-item_bias'")
    assert version.run_id == child.info.run_id
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    downloaded = mlflow.artifacts.download_artifacts(
        "models:/neurec-item_bias/latest", dst_path=str(project / "download")
    )
    model = load_model(Path(downloaded) / "artifacts" / "model.pt")
    assert model.config.epochs == 3
    for name, tensor in load_model(saved).state().items():
        assert torch.equal(model.state()[name], tensor)
    stored = [p for p in (project / "mlruns").rglob("*.pt")]
    assert len(stored) == 1, stored


def test_each_model_of_a_run_is_a_child_run_with_the_same_columns(project_copy):
    kedro_run(project_copy, "baselines", SMALL_DATA)
    client, (run,), children = runs_of(project_copy)
    baselines = {name for name, model in registry().items() if model.family == "baselines"}
    assert {child.info.run_name for child in children} == baselines
    assert run.info.run_name.startswith("baselines synthetic ")
    for child in children:
        assert child.data.tags[MLFLOW_PARENT_RUN_ID] == run.info.run_id
        assert child.info.status == "FINISHED"
        assert {"full.NDCG_at_10", "sampled_uniform_99.HR_at_10", "train_seconds"} <= set(
            child.data.metrics
        )
    # one registered MLflow model per child, logged in that child
    logged = client.search_logged_models([run.info.experiment_id])
    assert {(m.name, m.source_run_id) for m in logged} == {
        (child.info.run_name, child.info.run_id) for child in children
    }


def test_a_failed_run_fails_its_model_runs(project_copy, monkeypatch):
    def broken_evaluation(*args, **kwargs):
        raise ValueError("evaluation failed")

    monkeypatch.setattr(modeling_nodes.workflow, "evaluate", broken_evaluation)
    with pytest.raises(ValueError, match="evaluation failed"):
        kedro_run(project_copy, "most_popular", SMALL_DATA)
    client, (run,), (child,) = runs_of(project_copy)
    assert (run.info.status, child.info.status) == ("FAILED", "FAILED")
    assert client.search_logged_models([run.info.experiment_id]) == []


def test_the_data_source_and_data_set_read_in_a_few_words():
    parameters = {"data": {"source": "movielens", "path": None, "movielens": {"variant": "1m"}}}
    assert source_label(parameters["data"]) == "movielens-1m"
    assert source_label({"source": "csv", "path": "/data/shop/ratings.csv"}) == "csv ratings.csv"
    assert source_label({"source": "synthetic", "synthetic": {"n_users": 5}}) == "synthetic"


def test_metric_names_are_legal_in_mlflow():
    assert mlflow_name("NDCG@10") == "NDCG_at_10"
    assert mlflow_name("ease.sampled_uniform_99.HR@5") == "ease.sampled_uniform_99.HR_at_5"
    assert mlflow_name("a+b(c)") == "a_b_c_"

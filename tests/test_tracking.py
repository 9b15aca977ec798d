"""A `kedro run` is recorded in MLflow: read it back as a person would, through MlflowClient."""

import json
import os
import socket

import mlflow
import pytest
import torch

from neurec.datasets import load_model
from neurec.hooks import mlflow_name
from neurec.models import base
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


@pytest.fixture
def tracked_run(monkeypatch, project_copy, no_network):
    """The toy neural model of test_pipeline (3 epochs, so a loss curve) run through Kedro."""
    monkeypatch.setitem(base._REGISTRY, ItemBias.name, ItemBias)
    (project_copy / "conf" / "base" / "parameters_item_bias.yml").write_text(
        "item_bias:\n  epochs: 3\n  patience: 3\n  batch_size: 512\n  learning_rate: 0.05\n"
        "  negatives: 2\n"
    )
    kedro_run(project_copy, "item_bias", SMALL_DATA)
    client = mlflow.MlflowClient(f"sqlite:///{project_copy / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("neurec")
    (run,) = client.search_runs([experiment.experiment_id])
    return project_copy, client, experiment, run


def test_the_run_holds_parameters_curves_metrics_and_artifacts(tracked_run, no_network):
    project, client, experiment, run = tracked_run
    assert run.info.status == "FINISHED" and run.info.run_name == "item_bias"
    # who ran it, so the next run can tell a run killed hard from one still going
    assert run.data.tags["neurec.pid"] == str(os.getpid())
    assert run.data.tags["neurec.host"] == socket.gethostname()
    assert mlflow.active_run() is None  # closed: the next session gets a run of its own
    assert experiment.artifact_location == (project / "mlruns").as_uri()
    assert no_network == []

    params = run.data.params  # flattened, one per leaf
    assert params["item_bias.epochs"] == "3" and params["item_bias.negatives"] == "2"
    assert params["data.synthetic.n_users"] == "120" and params["split.method"] == "leave_one_out"
    assert "evaluation.protocols" in params

    models = dataset_folder(project, "06_models", SMALL_DATA)
    fit = json.loads((models / "item_bias_fit_report.json").read_text())
    assert len(fit["history"]) == 3
    for key, field in [
        ("item_bias.train.loss", "loss"),
        ("item_bias.validation.NDCG_at_10", "val_NDCG@10"),
    ]:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == [1, 2, 3]
        assert [m.value for m in history] == pytest.approx([e[field] for e in fit["history"]])

    reporting = dataset_folder(project, "08_reporting", SMALL_DATA)
    result = json.loads((reporting / "metrics.json").read_text())["models"]
    for protocol, values in result["item_bias"]["metrics"].items():
        for metric, value in values.items():
            name = f"item_bias.{protocol}.{mlflow_name(metric)}"
            assert run.data.metrics[name] == pytest.approx(value)
    assert run.data.metrics["item_bias.full.NDCG_at_10"] > 0
    assert run.data.metrics["item_bias.best_epoch"] == result["item_bias"]["best_epoch"]

    listed = {
        a.path
        for folder in ("report", "models")
        for a in client.list_artifacts(run.info.run_id, folder)
    }
    report = {"metrics.json", "report.md", "report.html", "metrics.png"}
    report |= {"training_curves.png", "metrics_at_k.png"}
    assert listed == {f"report/{name}" for name in report} | {"models/item_bias.pt"}
    downloaded = client.download_artifacts(run.info.run_id, "models/item_bias.pt", str(project))
    model = load_model(downloaded)
    (saved,) = (models / "item_bias.pt").glob("*/item_bias.pt")
    assert model.config.epochs == 3
    for name, tensor in load_model(saved).state().items():
        assert torch.equal(model.state()[name], tensor)


def test_metric_names_are_legal_in_mlflow():
    assert mlflow_name("NDCG@10") == "NDCG_at_10"
    assert mlflow_name("ease.sampled_uniform_99.HR@5") == "ease.sampled_uniform_99.HR_at_5"
    assert mlflow_name("a+b(c)") == "a_b_c_"

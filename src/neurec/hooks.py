"""Kedro hooks: what a run records in MLflow beyond what kedro-mlflow logs by itself.

kedro-mlflow opens one MLflow run per ``kedro run``, logs the parameters every node reads
and the catalog's ``MlflowArtifactDataset`` files (the report). These hooks add what the
per-model nodes output, so the model library itself never imports MLflow:

* ``<model>.train.loss``, ``<model>.train.epoch_seconds``, ``<model>.validation.NDCG_at_10`` ...:
  the training history, one value per epoch (step = epoch);
* ``<model>.<protocol>.<metric>`` (``ease.full.NDCG_at_10``): the test metrics, plus
  ``<model>.train_seconds``, ``.epochs``, ``.best_epoch``, ``.evaluation_seconds``;
* ``models/<model>.pt``: the trained model with its config, the file ``ModelDataset``
  writes, so ``neurec.datasets.load_model`` rebuilds it. (The catalog's versioned model
  files cannot be wrapped in ``MlflowArtifactDataset``: each wrapped dataset would draw its
  own save version, which Kedro's catalog refuses.)
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from mlflow.entities import Metric

from neurec.datasets import save_model
from neurec.models import Recommender, registry

SQLITE_PREFIX = "sqlite:///"
SUMMARY_FIELDS = ("train_seconds", "epochs", "best_epoch", "evaluation_seconds")


def mlflow_name(text: str) -> str:
    """A metric name MLflow accepts: ``NDCG@10`` -> ``NDCG_at_10``, other odd characters -> _."""
    return re.sub(r"[^\w.\-/ ]", "_", text.replace("@", "_at_"))


def epoch_metrics(model: str, history: list[dict[str, float]]) -> list[tuple[str, float, int]]:
    """(name, value, epoch) for every number in the per-epoch training history."""
    rows = []
    for entry in history:
        for key, value in entry.items():
            if key == "epoch":
                continue
            if key.startswith("val_"):
                name = f"validation.{key[4:]}"
            else:  # "seconds" alone would read like the model's total training time
                name = f"train.{'epoch_seconds' if key == 'seconds' else key}"
            rows.append((mlflow_name(f"{model}.{name}"), float(value), int(entry["epoch"])))
    return rows


def final_metrics(model: str, results: dict[str, Any]) -> dict[str, float]:
    """Test metrics per protocol and the training/evaluation cost of one model."""
    values = {mlflow_name(f"{model}.{field}"): float(results[field]) for field in SUMMARY_FIELDS}
    for protocol, metrics in results["metrics"].items():
        for metric, value in metrics.items():
            values[mlflow_name(f"{model}.{protocol}.{metric}")] = float(value)
    return values


def project_local_store(conf: dict[str, Any], project_path: Path) -> dict[str, Any]:
    """Anchor a relative ``sqlite:///file.db`` store, and its artifacts, at the project root.

    Without this, ``sqlite:///mlflow.db`` is relative to the working directory, so a
    notebook in ``notebooks/`` would start a second store there. A remote tracking server
    is left alone: it decides where artifacts go.
    """
    uri = conf.get("server", {}).get("mlflow_tracking_uri") or ""
    database = uri.removeprefix(SQLITE_PREFIX)
    if not uri.startswith(SQLITE_PREFIX) or Path(database).is_absolute():
        return conf
    conf.setdefault("server", {})["mlflow_tracking_uri"] = (
        f"{SQLITE_PREFIX}{(project_path / database).as_posix()}"
    )
    experiment = conf.setdefault("tracking", {}).setdefault("experiment", {})
    kwargs = experiment.setdefault("create_experiment_kwargs", {})
    if kwargs.get("artifact_location") is None:
        kwargs["artifact_location"] = (project_path / "mlruns").as_posix()
    return conf


class MlflowTrackingHooks:
    @hook_impl(tryfirst=True)  # before kedro-mlflow reads the configuration
    def after_context_created(self, context: KedroContext) -> None:
        try:
            conf = context.config_loader["mlflow"]
        except MissingConfigException:
            return
        context.config_loader["mlflow"] = project_local_store(conf, Path(context.project_path))

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        run = mlflow.active_run()  # none when tracking is disabled for this pipeline
        if run is None:
            return
        client, models = mlflow.MlflowClient(), registry()
        stamp = int(time.time() * 1000)
        batch: list[Metric] = []
        for dataset, value in outputs.items():
            model, _, kind = dataset.rpartition(".")
            if model not in models:
                continue
            if kind == "fit_report":
                rows = epoch_metrics(model, value["history"])
                batch += [Metric(key, number, stamp, step) for key, number, step in rows]
            elif kind == "results":
                batch += [Metric(k, v, stamp, 0) for k, v in final_metrics(model, value).items()]
            elif kind == "model" and isinstance(value, Recommender):
                log_model_file(client, run.info.run_id, value)
        if batch:
            client.log_batch(run.info.run_id, metrics=batch)


def log_model_file(client: mlflow.MlflowClient, run_id: str, model: Recommender) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{model.name}.pt"
        save_model(model, path)
        client.log_artifact(run_id, str(path), artifact_path="models")

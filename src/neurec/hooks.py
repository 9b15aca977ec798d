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
* an MLflow model ``<model>`` per trained model, registered as ``neurec-<model>``, that
  answers history -> top-k (``neurec.serving``; ``mlflow models serve`` serves it). It is
  logged when the whole pipeline has succeeded, so a failed run registers no model.

And they keep the run's status true: each run is tagged ``neurec.pid`` and ``neurec.host``;
one stopped with Ctrl-C is ``KILLED`` (kedro-mlflow would say FAILED, or FINISHED for a plain
``KeyboardInterrupt``), and a run still ``RUNNING`` whose process is gone (``kill -9``, power
loss) is marked ``KILLED`` when the next run starts.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from mlflow.entities import Metric, Run, RunStatus

from neurec.datasets import save_model
from neurec.models import Recommender, registry
from neurec.recommend import RecommendationService
from neurec.run_guard import RunInterrupted
from neurec.serving import log_service, registered_name

SQLITE_PREFIX = "sqlite:///"
SUMMARY_FIELDS = ("train_seconds", "epochs", "best_epoch", "evaluation_seconds")
PID_TAG, HOST_TAG = "neurec.pid", "neurec.host"
# a model's outputs: <model>.fit_report inside its namespace, <model>_model and
# <model>_results read outside it (neurec.pipelines.modeling.pipeline)
MODEL_OUTPUT = re.compile(r"(?P<model>.+)[._](?P<kind>fit_report|results|model)")
KILLED = RunStatus.to_string(RunStatus.KILLED)

logger = logging.getLogger(__name__)


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


def process_gone(pid: str) -> bool:
    """Whether the process of a recorded PID has ended; this process counts as ended, as it
    is starting another run. No PID recorded: it can't tell, so no."""
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process
        return False
    return False


def abandoned_runs(client: mlflow.MlflowClient, current: Run) -> list[Run]:
    """Runs of ``current``'s experiment still RUNNING though their process on this host ended."""
    host = socket.gethostname()
    running = client.search_runs(
        [current.info.experiment_id], filter_string="attributes.status = 'RUNNING'"
    )
    return [
        run
        for run in running
        if run.info.run_id != current.info.run_id
        and run.data.tags.get(HOST_TAG) == host
        and process_gone(run.data.tags.get(PID_TAG, ""))
    ]


class MlflowTrackingHooks:
    def __init__(self) -> None:
        self._run_id: str | None = None
        self._trained: list[str] = []  # models this run trained, to log as MLflow models

    @hook_impl(tryfirst=True)  # before kedro-mlflow reads the configuration
    def after_context_created(self, context: KedroContext) -> None:
        try:
            conf = context.config_loader["mlflow"]
        except MissingConfigException:
            return
        context.config_loader["mlflow"] = project_local_store(conf, Path(context.project_path))

    @hook_impl(trylast=True)  # after kedro-mlflow has started the run
    def before_pipeline_run(self) -> None:
        self._trained = []
        run = mlflow.active_run()
        self._run_id = None if run is None else run.info.run_id
        if run is None:
            return
        mlflow.set_tags({PID_TAG: os.getpid(), HOST_TAG: socket.gethostname()})
        client = mlflow.MlflowClient()
        for stale in abandoned_runs(client, run):
            client.set_terminated(stale.info.run_id, KILLED)
            logger.warning(
                "MLflow run %s (%s) was still RUNNING though its process %s is gone: now KILLED",
                stale.info.run_name,
                stale.info.run_id,
                stale.data.tags[PID_TAG],
            )

    @hook_impl(trylast=True)  # after kedro-mlflow has ended the run as FAILED
    def on_pipeline_error(self, error: Exception) -> None:
        if isinstance(error, RunInterrupted) and self._run_id and mlflow.active_run() is None:
            mlflow.MlflowClient().set_terminated(self._run_id, KILLED)

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        run = mlflow.active_run()  # none when tracking is disabled for this pipeline
        if run is None:
            return
        client, models = mlflow.MlflowClient(), registry()
        stamp = int(time.time() * 1000)
        batch: list[Metric] = []
        for dataset, value in outputs.items():
            match = MODEL_OUTPUT.fullmatch(dataset)
            if match is None or match["model"] not in models:
                continue
            model, kind = match["model"], match["kind"]
            if kind == "fit_report":
                rows = epoch_metrics(model, value["history"])
                batch += [Metric(key, number, stamp, step) for key, number, step in rows]
            elif kind == "results":
                batch += [Metric(k, v, stamp, 0) for k, v in final_metrics(model, value).items()]
            elif kind == "model" and isinstance(value, Recommender):
                log_model_file(client, run.info.run_id, value)
                self._trained.append(model)
        if batch:
            client.log_batch(run.info.run_id, metrics=batch)

    @hook_impl(tryfirst=True)  # before kedro-mlflow ends the run
    def after_pipeline_run(self, catalog: Any) -> None:
        if mlflow.active_run() is None:
            return
        for model in dict.fromkeys(self._trained):
            # from the catalog, as a user would load it: the files this run saved, checked
            # against the split (RecommendationService.from_catalog)
            info = log_service(RecommendationService.from_catalog(catalog, model), model)
            logger.info(
                "MLflow model '%s' logged (%s), registered as %s version %s",
                model,
                info.model_uri,
                registered_name(model),
                info.registered_model_version,
            )
        self._trained = []


def log_model_file(client: mlflow.MlflowClient, run_id: str, model: Recommender) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{model.name}.pt"
        save_model(model, path)
        client.log_artifact(run_id, str(path), artifact_path="models")

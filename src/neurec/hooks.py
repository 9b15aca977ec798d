"""Kedro hooks: what a run records in MLflow beyond what kedro-mlflow logs by itself, and the
run's torch threads.

kedro-mlflow opens one MLflow run per ``kedro run`` (the parent), logs the parameters every
node reads and the catalog's ``MlflowArtifactDataset`` files (the report). These hooks name
it ``<pipeline> <data source> <date time>`` and give every model the run trains or evaluates
a child run of its own (``mlflow.parentRunId``), named after the model, so that models
compare as rows of MLflow's table, each with the same column names:

* parameters: the model's whole config as the train node built it (``epochs``, ``l2``,
  ``distributed.world_size``, ...: defaults included), and ``torch_threads``;
* ``train.loss``, ``train.epoch_seconds``, ``validation.NDCG_at_10`` ...: the training
  history, one value per epoch (step = epoch);
* ``<protocol>.<metric>`` (``full.NDCG_at_10``): the test metrics, plus ``train_seconds``,
  ``epochs``, ``best_epoch``, ``evaluation_seconds``;
* an MLflow model named after the model, registered as ``neurec-<model>``, that answers
  history -> top-k (``neurec.serving``; ``mlflow models serve`` serves it). Its artifacts
  hold the trained model file (``model.pt``, which ``neurec.datasets.load_model`` reads),
  the only copy of the weights in MLflow. It is logged when the whole pipeline has
  succeeded, so a failed run registers no model;
* tags ``neurec.model``, ``neurec.family`` and ``neurec.dataset`` (the data set key of
  ``neurec.dataset_key``, also on the parent).

The model library itself never imports MLflow: everything comes from the nodes' inputs
and outputs. Children are written by id through ``MlflowClient`` and never made the active
run while nodes run, as kedro-mlflow re-enters the parent run before every node and logs
parameters and artifacts into whichever run is active.

They also keep the runs' status true: each run is tagged ``neurec.pid`` and
``neurec.host``; one stopped with Ctrl-C is ``KILLED`` (kedro-mlflow would say FAILED, or
FINISHED for a plain ``KeyboardInterrupt``), children end as their parent does, and a run
still ``RUNNING`` whose process is gone (``kill -9``, power loss) is marked ``KILLED`` when
the next run starts.

A mistyped ``--env`` stops the run with Kedro's own ``MissingConfigException`` naming the
missing ``conf/<env>`` folder (kedro-mlflow would take it for a missing ``mlflow.yml`` and
fail later on an MLflow file store).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import torch
from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.pipeline.node import Node
from mlflow.entities import Metric, Param, Run, RunStatus
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from neurec.dataset_key import dataset_key
from neurec.models import Recommender, registry
from neurec.models.base import build_config
from neurec.recommend import RecommendationService
from neurec.run_guard import RunInterrupted
from neurec.serving import log_service, registered_name
from neurec.threads import ThreadsConfig, apply_threads

SQLITE_PREFIX = "sqlite:///"
SUMMARY_FIELDS = ("train_seconds", "epochs", "best_epoch", "evaluation_seconds")
PID_TAG, HOST_TAG = "neurec.pid", "neurec.host"
MODEL_TAG, FAMILY_TAG, DATASET_TAG = "neurec.model", "neurec.family", "neurec.dataset"
KILLED, FAILED, FINISHED = (
    RunStatus.to_string(status)
    for status in (RunStatus.KILLED, RunStatus.FAILED, RunStatus.FINISHED)
)
# a model's outputs: <model>.fit_report inside its namespace, <model>_model and
# <model>_results read outside it (neurec.pipelines.modeling.pipeline)
MODEL_OUTPUT = re.compile(r"(?P<model>.+)[._](?P<kind>fit_report|results|model)")

logger = logging.getLogger(__name__)


def mlflow_name(text: str) -> str:
    """A metric name MLflow accepts: ``NDCG@10`` -> ``NDCG_at_10``, other odd characters -> _."""
    return re.sub(r"[^\w.\-/ ]", "_", text.replace("@", "_at_"))


def epoch_metrics(history: list[dict[str, float]]) -> list[tuple[str, float, int]]:
    """(name, value, epoch) for every number in a model's per-epoch training history."""
    rows = []
    for entry in history:
        for key, value in entry.items():
            if key == "epoch":
                continue
            if key.startswith("val_"):
                name = f"validation.{key[4:]}"
            else:  # "seconds" alone would read like the model's total training time
                name = f"train.{'epoch_seconds' if key == 'seconds' else key}"
            rows.append((mlflow_name(name), float(value), int(entry["epoch"])))
    return rows


def final_metrics(results: dict[str, Any]) -> dict[str, float]:
    """Test metrics per protocol and the training/evaluation cost of one model."""
    values = {mlflow_name(field): float(results[field]) for field in SUMMARY_FIELDS}
    for protocol, metrics in results["metrics"].items():
        for metric, value in metrics.items():
            values[mlflow_name(f"{protocol}.{metric}")] = float(value)
    return values


def config_params(config: Any) -> dict[str, str]:
    """A model config as MLflow parameters, one per leaf: ``{"distributed.world_size": "1"}``."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        else:  # tuples as lists, as kedro-mlflow writes the YAML's lists in the parent run
            flat[prefix[:-1]] = str(list(value) if isinstance(value, tuple) else value)

    walk("", dataclasses.asdict(config))
    return flat


def source_label(data: Mapping[str, Any]) -> str:
    """The data source in a few words: ``synthetic``, ``movielens-1m``, ``csv ratings.csv``."""
    source = str(data.get("source", "unknown"))
    if data.get("path"):
        return f"{source} {Path(str(data['path'])).name}"
    variant = (data.get(source) or {}).get("variant")
    return f"{source}-{variant}" if variant else source


def parent_run_name(pipeline: str, parameters: Mapping[str, Any], started: float) -> str:
    """``<pipeline> <source> <date time>``: ``__default__ synthetic 2026-12-02 16:31:05``."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    return f"{pipeline} {source_label(parameters.get('data') or {})} {when}"


def model_config(model: str, inputs: Mapping[str, Any]) -> Any | None:
    """The config of ``model`` from a node's inputs: the train node's parameters block
    (defaults filled in, as the node builds it) or the trained model the evaluate node reads."""
    params = f"params:{model}"
    if params in inputs:
        return build_config(registry()[model].config_class, inputs[params], model)
    trained = inputs.get(f"{model}_model")
    return trained.config if isinstance(trained, Recommender) else None


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
        self._configured_name: str | None = None  # tracking.run.name of mlflow.yml
        self._reset()

    def _reset(self) -> None:
        self._run_id: str | None = None
        self._experiment_id: str | None = None
        self._parameters: Mapping[str, Any] = {}
        self._children: dict[str, str] = {}  # model -> its child run's id
        self._described: set[str] = set()  # children whose parameters are logged
        self._trained: list[str] = []  # models this run trained, to log as MLflow models

    @hook_impl(tryfirst=True)  # before kedro-mlflow reads the configuration
    def after_context_created(self, context: KedroContext) -> None:
        try:
            conf = context.config_loader["mlflow"]
        except MissingConfigException:
            # Kedro raises this for a missing mlflow.yml and for a run environment whose
            # folder is missing (a mistyped --env), which kedro-mlflow would both take for
            # the first and end in an MLflow file-store error. The catalog, which every run
            # reads, raises Kedro's own message naming conf/<env> in the second case.
            context.config_loader["catalog"]
            return
        self._configured_name = ((conf.get("tracking") or {}).get("run") or {}).get("name")
        context.config_loader["mlflow"] = project_local_store(conf, Path(context.project_path))

    @hook_impl(trylast=True)  # after kedro-mlflow has started the run
    def before_pipeline_run(self, run_params: dict[str, Any], catalog: Any) -> None:
        self._reset()
        run = mlflow.active_run()
        if run is None:
            return
        self._run_id, self._experiment_id = run.info.run_id, run.info.experiment_id
        self._parameters = catalog.load("parameters")
        client = mlflow.MlflowClient()
        pipeline = "+".join(run_params.get("pipeline_names") or ["__default__"])
        # kedro-mlflow names the run after the pipeline unless mlflow.yml names it; a run
        # started outside Kedro (an orchestrator's) keeps its name
        if self._configured_name is None and run.info.run_name == pipeline:
            name = parent_run_name(pipeline, self._parameters, run.info.start_time / 1000)
            client.update_run(self._run_id, name=name)
        mlflow.set_tags({PID_TAG: os.getpid(), HOST_TAG: socket.gethostname()})
        if "torch_threads" not in run.data.params:  # a re-entered run has them already
            client.log_batch(self._run_id, params=thread_params())
        for stale in abandoned_runs(client, run):
            client.set_terminated(stale.info.run_id, KILLED)
            logger.warning(
                "MLflow run %s (%s) was still RUNNING though its process %s is gone: now KILLED",
                stale.info.run_name,
                stale.info.run_id,
                stale.data.tags[PID_TAG],
            )

    @hook_impl
    def before_node_run(self, node: Node, inputs: dict[str, Any]) -> None:
        model = node.namespace
        if self._run_id is None or model not in registry():
            return
        self._child(model)
        if model not in self._described:
            config = model_config(model, inputs)
            if config is not None:
                mlflow.MlflowClient().log_batch(
                    self._children[model],
                    params=[Param(k, v) for k, v in config_params(config).items()],
                )
                self._described.add(model)
        self._tag_dataset(model, inputs.get(f"{model}_model"))

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        if self._run_id is None:  # tracking is disabled for this pipeline
            return
        models = registry()
        stamp = int(time.time() * 1000)
        batches: dict[str, list[Metric]] = {}
        for dataset, value in outputs.items():
            match = MODEL_OUTPUT.fullmatch(dataset)
            if match is None or match["model"] not in models:
                continue
            model, kind = match["model"], match["kind"]
            batch = batches.setdefault(model, [])
            if kind == "fit_report":
                rows = epoch_metrics(value["history"])
                batch += [Metric(key, number, stamp, step) for key, number, step in rows]
            elif kind == "results":
                batch += [Metric(k, v, stamp, 0) for k, v in final_metrics(value).items()]
            elif kind == "model" and isinstance(value, Recommender):
                self._tag_dataset(model, value)
                self._trained.append(model)
        client = mlflow.MlflowClient()
        for model, batch in batches.items():
            if batch:
                client.log_batch(self._child(model), metrics=batch)

    @hook_impl(tryfirst=True)  # before kedro-mlflow ends the run
    def after_pipeline_run(self, catalog: Any) -> None:
        if self._run_id is None:
            return
        for model in dict.fromkeys(self._trained):
            # from the catalog, as a user would load it: the files this run saved, checked
            # against the split (RecommendationService.from_catalog); in the model's child
            # run, which this makes the active one until the model is logged (nodes are done)
            service = RecommendationService.from_catalog(catalog, model)
            with mlflow.start_run(run_id=self._children[model], nested=True):
                info = log_service(service, model)
            logger.info(
                "MLflow model '%s' logged (%s), registered as %s version %s",
                model,
                info.model_uri,
                registered_name(model),
                info.registered_model_version,
            )
        self._end_children(FINISHED)

    @hook_impl(trylast=True)  # after kedro-mlflow has ended the run as FAILED
    def on_pipeline_error(self, error: Exception) -> None:
        interrupted = isinstance(error, RunInterrupted)
        self._end_children(KILLED if interrupted else FAILED)
        if interrupted and self._run_id and mlflow.active_run() is None:
            mlflow.MlflowClient().set_terminated(self._run_id, KILLED)

    def _child(self, model: str) -> str:
        """The id of ``model``'s child run, created on first use."""
        if model not in self._children:
            tags = {
                MLFLOW_PARENT_RUN_ID: self._run_id,
                MODEL_TAG: model,
                FAMILY_TAG: registry()[model].family,
                PID_TAG: str(os.getpid()),
                HOST_TAG: socket.gethostname(),
            }
            client = mlflow.MlflowClient()
            child = client.create_run(self._experiment_id, tags=tags, run_name=model)
            client.log_batch(child.info.run_id, params=thread_params())
            self._children[model] = child.info.run_id
        return self._children[model]

    def _tag_dataset(self, model: str, trained: Any) -> None:
        """Tag ``model``'s child and the parent with the data set ``trained`` learned from."""
        if not isinstance(trained, Recommender):
            return
        key = dataset_key(self._parameters)  # the folder name of this run's data set
        client = mlflow.MlflowClient()
        for run_id in (self._children[model], self._run_id):
            client.set_tag(run_id, DATASET_TAG, key)

    def _end_children(self, status: str) -> None:
        client = mlflow.MlflowClient()
        for run_id in self._children.values():
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_terminated(run_id, status)
        self._children = {}


def thread_params() -> list[Param]:
    """The torch threads this process uses (``neurec.threads``), as MLflow parameters."""
    return [
        Param("torch_threads", str(torch.get_num_threads())),
        Param("torch_interop_threads", str(torch.get_num_interop_threads())),
    ]


class ThreadsHooks:
    """Apply the ``threads`` block before the first node (and before the run lock is taken:
    a bad value stops the run with its ``ConfigError``, leaving nothing behind)."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, catalog: Any) -> None:
        parameters = catalog.load("parameters")
        apply_threads(build_config(ThreadsConfig, parameters.get("threads"), "threads"))

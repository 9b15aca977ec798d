"""Data-parallel training of one neural model over processes and machines (torch.distributed).

Two ways in, one training loop (:func:`neurec.training.train_loop`, which shards every
batch over the ranks and averages gradients with DistributedDataParallel):

* on one machine, :func:`train_distributed` starts ``<model>.distributed.world_size``
  worker processes with torch's elastic launcher (the machinery behind ``torchrun``),
  gloo on the CPU or NCCL on CUDA, a rendezvous on 127.0.0.1; the train node calls it
  when that parameter is above 1, and rank 0's trained weights come back to the node;
* across machines, ``torchrun ... -m neurec.distributed --model <model>`` on each
  machine trains from the split files that ``kedro run --pipelines=<model>`` wrote
  (``data/05_model_input``) and rank 0 saves the model as a new version of the catalog's
  ``<model>_model`` (and its ``<model>.fit_report``), where the evaluate node and the
  recommend pipeline find it (README, "Training on several processes and machines").

A failed worker stops the whole run with :class:`DistributedTrainingError` naming its
rank; a worker left waiting on the others gives up after ``distributed.timeout_seconds``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import socket
import sys
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, record
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from neurec.evaluation import make_validator
from neurec.interactions import Interactions
from neurec.models.base import FitReport, build_config, dependencies
from neurec.threads import ThreadsConfig, apply_threads, set_threads, share
from neurec.training import Checkpoint, TorchRecommender, resolve_device

logger = logging.getLogger(__name__)


class DistributedTrainingError(RuntimeError):
    """A worker of a data-parallel training failed (the message names its rank)."""


def backend_for(device: str) -> str:
    """NCCL when the model trains on CUDA, else gloo."""
    return "nccl" if resolve_device(device).type == "cuda" else "gloo"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_distributed(
    model: TorchRecommender,
    train: Interactions,
    validation: Interactions | None = None,
    checkpoint: Checkpoint | None = None,
) -> FitReport:
    """Fit ``model`` in ``model.config.distributed.world_size`` processes of this machine.

    Every worker gets a copy of the model and the data, trains its share of every batch
    and validates on ``validation`` (rank 0 decides); rank 0's weights are loaded into
    ``model`` and its fit report returned. Pretrained weights (NeuMF) must already be in
    ``model``. The workers share out this process's torch threads (the run's ``threads``):
    a fresh process would start one thread per core, each worker competing for them all.
    """
    settings = model.config.distributed
    threads = share(torch.get_num_threads(), settings.world_size)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=settings.world_size,
        run_id=f"neurec-{model.name}-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{free_port()}",
        rdzv_configs={"join_timeout": settings.timeout_seconds},
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
        local_addr="127.0.0.1",
    )
    logger.info(
        "%s: training in %d processes (%s, %d torch threads each)",
        model.name,
        settings.world_size,
        backend_for(model.config.device),
        threads,
    )
    try:
        launch = elastic_launch(config, train_worker)
        results = launch(model, train, validation, checkpoint, threads)
    except ChildFailedError as error:
        raise DistributedTrainingError(failure_message(model.name, error)) from None
    state, report = results[0]
    model.load_state(state)
    return report


def failure_message(model_name: str, error: ChildFailedError) -> str:
    rank, failure = error.get_first_failure()
    reason = failure.message if isinstance(failure.message, str) else str(failure.message)
    if failure.exitcode is not None and failure.exitcode < 0:
        reason = f"killed by signal {failure.signal_name()}"
    return f"{model_name}: data-parallel training failed in worker rank {rank}: {reason}"


@record  # writes the worker's exception where the launcher reads it (its failure message)
def train_worker(
    model: TorchRecommender,
    train: Interactions,
    validation: Interactions | None,
    checkpoint: Checkpoint | None,
    threads: int,
) -> tuple[dict[str, Any], FitReport] | None:
    """One rank of :func:`train_distributed`: its state and report on rank 0, else None."""
    set_threads(threads)
    # torch.multiprocessing hands every worker the model's tensors in one shared memory
    # block: without a private copy, each rank's optimiser steps would update them all
    model = copy.deepcopy(model)
    if os.environ.get("RANK") == "0" and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s rank 0 %(message)s")
    with ProcessGroup(model):
        validator = make_validator(train, validation) if validation is not None else None
        report = model.fit(train, validator, checkpoint)
        return (model.state(), report) if dist.get_rank() == 0 else None


class ProcessGroup:
    """``torch.distributed`` set up from the launcher's environment, torn down on exit."""

    def __init__(self, model: TorchRecommender) -> None:
        self.backend = backend_for(model.config.device)
        self.timeout = timedelta(seconds=model.config.distributed.timeout_seconds)

    def __enter__(self) -> None:
        dist.init_process_group(self.backend, timeout=self.timeout)

    def __exit__(self, *exc: object) -> None:
        dist.destroy_process_group()


# --- across machines: torchrun -m neurec.distributed ---------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Train one model from the project's split files in a ``torchrun`` group."""
    parser = argparse.ArgumentParser(
        prog="torchrun ... -m neurec.distributed",
        description=(
            "Train one model data-parallel from the split files of `kedro run "
            "--pipelines=<model>` (data/05_model_input); rank 0 saves it as a new version "
            "of <model>_model. Run under torchrun on every machine."
        ),
    )
    parser.add_argument("--model", required=True, help="registered model name, e.g. sasrec")
    parser.add_argument("--project", default=".", help="the Kedro project folder")
    parser.add_argument("--env", default=None, help="Kedro configuration environment")
    parser.add_argument(
        "--params", default="", help='parameter overrides as for kedro run: "a.b=1,c=x"'
    )
    args = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("run under torchrun (RANK, WORLD_SIZE and MASTER_ADDR are not set)")
    logging.basicConfig(
        level=logging.INFO if os.environ["RANK"] == "0" else logging.WARNING,
        format=f"%(asctime)s rank {os.environ['RANK']} %(message)s",
    )
    train_from_project(Path(args.project), args.model, args.env, parse_params(args.params))
    return 0


def parse_params(text: str) -> dict[str, Any]:
    """Kedro's ``--params`` syntax (``a.b=1,c=x``) as the nested dict ``kedro run`` makes."""
    from omegaconf import OmegaConf

    pairs = [pair.strip() for pair in text.split(",") if pair.strip()]
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--params: expected key=value, got {pair!r}")
    return OmegaConf.to_container(OmegaConf.from_dotlist(pairs))


def train_from_project(
    project: Path, model_name: str, env: str | None, params: dict[str, Any]
) -> None:
    """Every rank loads the split and trains; rank 0 saves ``<model>_model`` and the report.

    The ranks of one machine (``LOCAL_WORLD_SIZE``, torchrun's ``--nproc-per-node``) share
    out the ``threads`` block's count."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from neurec.pipelines.modeling.nodes import train_model

    project = project.resolve()
    bootstrap_project(project)
    with KedroSession.create(project, env=env, runtime_params=params) as session:
        context = session.load_context()
        catalog, parameters = context.catalog, context.params
        threads = build_config(ThreadsConfig, parameters.get("threads"), "threads")
        apply_threads(threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        pretrained = {
            name: catalog.load(f"{name}_model") for name in dependencies(model_name, parameters)
        }
        model_params = parameters.get(model_name)
        backend = backend_for((model_params or {}).get("device", "auto"))
        timeout = (model_params or {}).get("distributed", {}).get("timeout_seconds", 600.0)
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
        try:
            model, fit_report = train_model(
                catalog.load("split"),
                model_params,
                parameters.get("training", {}),
                catalog.load("training_checkpoints"),
                model_name=model_name,
                **pretrained,
            )
            if dist.get_rank() == 0:
                catalog.save(f"{model_name}_model", model)
                catalog.save(f"{model_name}.fit_report", fit_report)
                logger.info(
                    "%s: saved as %s; evaluate it with `kedro run --pipelines=%s "
                    "--from-nodes=%s.evaluate`",
                    model_name,
                    f"{model_name}_model",
                    model_name,
                    model_name,
                )
        finally:
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())

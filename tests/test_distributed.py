"""Data-parallel training (torch.distributed, gloo on 127.0.0.1) equals one process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

import neurec
from neurec.distributed import DistributedTrainingError, free_port, train_distributed
from neurec.interactions import Interactions
from neurec.models import registry
from neurec.models.gmf import GMF
from neurec.threads import set_threads
from neurec.training import shard_batch
from tests.test_pipeline import SMALL_DATA, dataset_folder, kedro_run

# plain SGD, no dropout: one process and two must take the same steps
STEP_PARAMS = {"optimizer": "sgd", "learning_rate": 0.5, "seed": 3, "device": "cpu"}
MODEL_PARAMS = {
    # 32 users with histories longer than max_len + 1: every row of a sequence batch has
    # max_len valid positions, so the per-position mean is a per-row mean
    "sasrec": {
        **STEP_PARAMS,
        "epochs": 2,
        "batch_size": 8,
        "max_len": 6,
        "hidden_size": 16,
        "dropout": 0.0,
    },
    # 32 x 10 interactions, 4 rows a rank per batch
    "gmf": {**STEP_PARAMS, "epochs": 2, "batch_size": 8, "factors": 4, "negatives": 2},
}


def tiny_train(n_users: int = 32, n_items: int = 40, per_user: int = 10) -> Interactions:
    rng = np.random.default_rng(0)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    return Interactions(np.repeat(np.arange(n_users), per_user), items, n_users, n_items)


def build(name: str, world_size: int, train: Interactions, model_class=None):
    params = {**MODEL_PARAMS[name], "distributed": {"world_size": world_size}}
    model_class = model_class or registry()[name]
    return model_class.from_params(params, train.n_users, train.n_items)


@pytest.mark.parametrize("name", ["sasrec", "gmf"])
def test_two_processes_take_the_steps_of_one(name):
    train = tiny_train()
    alone = build(name, 1, train)
    alone.fit(train)
    pair = build(name, 2, train)
    before = pair.state()
    report = train_distributed(pair, train)
    assert report.epochs == 2 and len(report.history) == 2
    for key, weights in alone.state().items():
        assert not torch.equal(before[key], weights) or key.endswith("padding"), key
        torch.testing.assert_close(pair.state()[key], weights, atol=1e-5, rtol=0, msg=key)


def test_shards_are_disjoint_and_cover_the_batch_with_row_weights():
    batch = (torch.arange(5), torch.arange(10).view(5, 2), torch.tensor([7, 8]))
    parts = [shard_batch(batch, rank, 2, shared=(2,)) for rank in range(2)]
    assert torch.equal(torch.cat([part[0][0] for part in parts]), batch[0])
    assert [weight for _, weight in parts] == [0.8, 1.2]
    assert all(torch.equal(part[0][2], batch[2]) for part in parts)
    # a rank left without rows computes row 0 with weight 0
    (rows, *_), weight = shard_batch((torch.arange(1),), 0, 2)
    assert weight == 0 and len(rows) == 1


class FailingGMF(GMF):
    """Raises in the worker of rank 1 at its first batch."""

    def batch_loss(self, batch):
        if torch.distributed.get_rank() == 1:
            raise RuntimeError("worker broke on purpose")
        return super().batch_loss(batch)


class ThreadCountingGMF(GMF):
    """Raises in a worker whose torch thread count is not ``expected_threads``."""

    expected_threads = 0

    def batch_loss(self, batch):
        if torch.get_num_threads() != self.expected_threads:
            raise RuntimeError(f"{torch.get_num_threads()} torch threads")
        return super().batch_loss(batch)


def test_the_workers_share_out_the_runs_threads():
    train = tiny_train()
    before = torch.get_num_threads()
    try:
        set_threads(2)  # a fresh worker would take one per core (2 here): each gets 1
        model = build("gmf", 2, train, ThreadCountingGMF)
        model.expected_threads = 1
        assert train_distributed(model, train).epochs == 2
    finally:
        set_threads(before)


def test_a_failing_worker_stops_the_run_naming_its_rank():
    train = tiny_train()
    model = build("gmf", 2, train, FailingGMF)
    started = time.perf_counter()
    with pytest.raises(DistributedTrainingError, match=r"rank 1: .*worker broke on purpose"):
        train_distributed(model, train)
    assert time.perf_counter() - started < 60


# --- through Kedro: the train node's worker processes, and torchrun agents ---------------

GMF_RUN = {
    **SMALL_DATA,
    "gmf": {**STEP_PARAMS, "epochs": 3, "batch_size": 64, "factors": 8, "learning_rate": 0.2},
}


def gmf_metrics(project: Path) -> dict:
    """The test metrics of the latest evaluated gmf version."""
    results = dataset_folder(project, "07_model_output", GMF_RUN) / "gmf_results.json"
    latest = max(results.iterdir())
    return json.loads((latest / "gmf_results.json").read_text())["metrics"]


def with_world_size(params: dict, world_size: int) -> dict:
    return {**params, "gmf": {**params["gmf"], "distributed": {"world_size": world_size}}}


def test_the_train_node_starts_its_workers_and_reaches_the_same_metrics(project_copy, caplog):
    kedro_run(project_copy, "gmf", GMF_RUN)
    alone = gmf_metrics(project_copy)
    caplog.set_level(logging.INFO, logger="neurec.distributed")
    kedro_run(project_copy, "gmf", with_world_size(GMF_RUN, 2))
    threads = max(1, torch.get_num_threads() // 2)
    assert f"gmf: training in 2 processes (gloo, {threads} torch threads each)" in caplog.messages
    assert_same_metrics(gmf_metrics(project_copy), alone)


def assert_same_metrics(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for protocol, values in expected.items():
        for metric, value in values.items():
            assert got[protocol][metric] == pytest.approx(value, abs=1e-6), (protocol, metric)


def test_two_torchrun_nodes_train_to_the_single_process_metrics(project_copy):
    kedro_run(project_copy, "gmf", GMF_RUN)  # writes the split, and the reference
    alone = gmf_metrics(project_copy)
    endpoint = f"127.0.0.1:{free_port()}"
    # the data settings too: they name the data set whose split the agents read
    synthetic = GMF_RUN["data"]["synthetic"]
    overrides = ",".join(
        [f"gmf.{k}={v}" for k, v in GMF_RUN["gmf"].items()]
        + [f"data.synthetic.{k}={v}" for k, v in synthetic.items()]
    )
    overrides += ",threads.torch=1"  # each agent's one rank takes the threads block's count
    env = {**os.environ, "PYTHONPATH": str(Path(neurec.__file__).resolve().parents[1])}
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc-per-node=1",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={endpoint}",
                "-m",
                "neurec.distributed",
                "--model",
                "gmf",
                "--project",
                str(project_copy),
                "--params",
                overrides,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [agent.communicate(timeout=120)[0] for agent in agents]
    finally:
        for agent in agents:
            agent.kill()
    assert [agent.returncode for agent in agents] == [0, 0], "\n".join(outputs)
    assert "torch threads: 1 intra-op" in outputs[0] + outputs[1]
    kedro_run_from(project_copy, "gmf", GMF_RUN, "gmf.evaluate")
    assert_same_metrics(gmf_metrics(project_copy), alone)


def kedro_run_from(project: Path, pipeline: str, params: dict, node: str) -> None:
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=params) as session:
        session.run(pipeline_names=[pipeline], from_nodes=[node])

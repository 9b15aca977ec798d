"""Nothing half-written: atomic saves, one run per project, failed runs leave no new version."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mlflow
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from fsspec.implementations.local import LocalFileOpener
from kedro.io import AbstractDataset, DataCatalog, DatasetError
from kedro.io.core import generate_timestamp
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.plotly import JSONDataset as PlotlyJSONDataset
from kedro_datasets.text import TextDataset
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from neurec import workflow
from neurec.dataset_key import DatasetKeyConfigLoader, DatasetKeyDataset
from neurec.datasets import (
    TEMPORARY_SUFFIX,
    Atomic,
    CheckpointFolder,
    ModelDataset,
    ParquetChunks,
    SavedResults,
    SavedStudies,
    SplitDataset,
    TrainedModels,
)
from neurec.models import registry
from neurec.recommend import RecommendationService
from neurec.run_guard import LOCK_FILE, RunLocked, remove_run_versions
from tests.conftest import PROJECT_ROOT
from tests.test_pipeline import SMALL_DATA, dataset_folder, kedro_run
from tests.test_viz import process_group


def a_figure() -> plt.Figure:
    figure, axes = plt.subplots()
    axes.plot(range(200), range(200))
    return figure


def a_log() -> pd.DataFrame:
    """An interaction log of 1000 users x 5 items."""
    users = [user for user in range(1000) for _ in range(5)]
    return pd.DataFrame({"user": users, "item": list(range(5)) * 1000, "timestamp": range(5000)})


SAMPLES = {  # something of each kind the catalog saves, large enough to be written in chunks
    ParquetDataset: lambda: pd.DataFrame({"user": range(5000), "item": range(5000)}),
    JSONDataset: lambda: {"values": list(range(5000))},
    TextDataset: lambda: "a line of the report\n" * 2000,
    MatplotlibDataset: a_figure,
    PlotlyJSONDataset: lambda: go.Figure(go.Scatter(x=list(range(2000)), y=list(range(2000)))),
    ModelDataset: lambda: registry()["most_popular"].from_params({}, 50, 3000),
    SplitDataset: lambda: workflow.split(a_log(), {"min_user_interactions": 3}),
    ParquetChunks: lambda: (  # a stream of chunks, as the recommend node returns
        pd.DataFrame({"user": range(start, start + 2000), "item": range(2000)})
        for start in range(0, 10_000, 2000)
    ),
}


def catalog_entries() -> dict[str, dict[str, Any]]:
    """Every entry of conf/base/catalog.yml, dataset factories resolved for the model ease."""
    loader = DatasetKeyConfigLoader(
        str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base"
    )
    return {
        name.replace("{model}", "ease"): resolve(
            entry, lambda text: text.replace("{model}", "ease")
        )
        for name, entry in loader["catalog"].items()
        if not name.startswith("_")
    }


def resolve(entry: Any, change) -> Any:
    if isinstance(entry, dict):
        return {key: resolve(value, change) for key, value in entry.items()}
    return change(entry) if isinstance(entry, str) else entry


def in_folder(entry: dict[str, Any], folder: pathlib.Path) -> dict[str, Any]:
    """The entry with its file paths moved under ``folder``."""
    if not isinstance(entry, dict):
        return entry
    return {
        key: str(folder / value) if key in ("filepath", "path") else in_folder(value, folder)
        for key, value in entry.items()
    }


def build(name: str, entry: dict[str, Any], folder: pathlib.Path) -> AbstractDataset:
    dataset = AbstractDataset.from_config(
        name, in_folder(entry, folder), save_version=generate_timestamp()
    )
    if hasattr(dataset, "_logging_activated"):  # MlflowArtifactDataset: no MLflow run here
        dataset._logging_activated = False
    return dataset


def files(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def dies_half_way(monkeypatch) -> None:
    """The next file write stores half its bytes, then the process 'dies' (disk full)."""

    def fsspec_write(self, data):
        self.f.write(data[: len(data) // 2])
        raise OSError("No space left on device")

    def torch_save(obj, file, *args, **kwargs):  # models are saved into an open file
        file.write(b"half a model")
        raise OSError("No space left on device")

    monkeypatch.setattr(LocalFileOpener, "write", fsspec_write)
    monkeypatch.setattr(torch, "save", torch_save)


@pytest.mark.parametrize("name", sorted(catalog_entries()))
def test_every_catalog_entry_saves_a_whole_file_or_none(name, tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous file (or latest version) as it was and
    no temporary file behind. Runs over the whole catalog: a new entry can't bypass it."""
    entry = catalog_entries()[name]
    dataset = build(name, entry, tmp_path)
    if isinstance(
        dataset, TrainedModels | CheckpointFolder | SavedResults | SavedStudies | DatasetKeyDataset
    ):
        with pytest.raises(DatasetError, match="read-only"):
            dataset.save("a model shelf")
        return
    kind = next((k for k in type(dataset).__mro__ if k in SAMPLES), None)
    assert kind is not None, f"{name}: add a sample of {type(dataset).__name__} to SAMPLES"
    dataset.save(SAMPLES[kind]())
    before = files(tmp_path)
    assert before, f"{name} saved nothing"

    dies_half_way(monkeypatch)
    with pytest.raises((OSError, DatasetError), match="No space left"):
        build(name, entry, tmp_path).save(SAMPLES[kind]())  # a new save version if versioned
    monkeypatch.undo()

    assert files(tmp_path) == before
    assert not list(tmp_path.rglob(f"*{TEMPORARY_SUFFIX}"))
    if kind is not MatplotlibDataset:  # which saves only
        build(name, entry, tmp_path).load()  # the latest (whole) version


def test_versioned_goes_on_the_atomic_entry_so_the_run_shares_one_save_version(tmp_path):
    inner = {"type": "json.JSONDataset", "filepath": str(tmp_path / "r.json")}
    with pytest.raises(DatasetError, match=r"'versioned: true' on the neurec\.datasets\.Atomic"):
        AbstractDataset.from_config(
            "r", {"type": "neurec.datasets.Atomic", "dataset": {**inner, "versioned": True}}
        )
    dataset = AbstractDataset.from_config(
        "r",
        {"type": "neurec.datasets.Atomic", "versioned": True, "dataset": inner},
        save_version="v1",
    )
    assert isinstance(dataset, JSONDataset) and Atomic not in type(dataset).__mro__
    dataset.save({"a": 1})
    assert (tmp_path / "r.json" / "v1" / "r.json").exists()


# --- whole runs: a failed or interrupted run leaves no new version --------------------


def versions(project: pathlib.Path, model: str) -> dict[str, list[str]]:
    """The saved versions of ``model`` and its results on the SMALL_DATA data set."""
    folders = {
        "model": dataset_folder(project, "06_models", SMALL_DATA) / f"{model}.pt",
        "results": dataset_folder(project, "07_model_output", SMALL_DATA) / f"{model}_results.json",
    }
    return {
        kind: sorted(p.name for p in folder.glob("*")) if folder.exists() else []
        for kind, folder in folders.items()
    }


def mlflow_runs(project: pathlib.Path, children: bool = False) -> list:
    """The project's MLflow runs of whole kedro runs, oldest first; ``children``: with the
    runs of their models."""
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("neurec")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return [run for run in runs if children or MLFLOW_PARENT_RUN_ID not in run.data.tags]


@pytest.fixture
def ctrl_c_not_ignored():
    """Ctrl-C as in a terminal, even when pytest runs as a background job (SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def ctrl_c(*args, **kwargs):
    """What pressing Ctrl-C during the evaluation does: SIGINT to this process."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the signal arrives at once; never reached
    raise AssertionError("SIGINT did not interrupt the run")


def broken_evaluation(*args, **kwargs):
    raise ValueError("evaluation failed")


@pytest.mark.parametrize(
    ("failure", "error", "status"),
    [(broken_evaluation, ValueError, "FAILED"), (ctrl_c, KeyboardInterrupt, "KILLED")],
    ids=["error", "ctrl-c"],
)
def test_a_run_failing_in_evaluate_leaves_no_new_model_or_results_version(
    project_copy, monkeypatch, failure, error, status, ctrl_c_not_ignored
):
    kedro_run(project_copy, "most_popular", SMALL_DATA)
    first = versions(project_copy, "most_popular")
    assert all(len(v) == 1 for v in first.values())

    monkeypatch.setattr(workflow, "evaluate", failure)  # train saves the model, then...
    with pytest.raises(error):
        kedro_run(project_copy, "most_popular", SMALL_DATA)
    assert versions(project_copy, "most_popular") == first
    assert [run.info.status for run in mlflow_runs(project_copy)] == ["FINISHED", status]
    assert not (project_copy / LOCK_FILE).exists()  # released
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_removing_a_first_version_removes_its_dataset_folder_too(tmp_path):
    catalog = DataCatalog.from_config(
        {
            "r": {
                "type": "neurec.datasets.Atomic",
                "versioned": True,
                "dataset": {"type": "json.JSONDataset", "filepath": str(tmp_path / "r.json")},
            }
        },
        save_version="v1",
    )
    catalog.save("r", {"a": 1})
    assert remove_run_versions(catalog, ["r", "params:x"], "v1") == [tmp_path / "r.json" / "v1"]
    assert list(tmp_path.iterdir()) == []


# --- runs in other processes: `kedro run` as a person starts it -----------------------


# `kedro <args>` with Ctrl-C not ignored, as from a terminal: a background job of a script
# (pytest itself may be one) starts with SIGINT ignored, which a run keeps ignoring
AS_FROM_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'kedro', *sys.argv[1:]])"
)


def start_slow_run(project: pathlib.Path, log: pathlib.Path):
    """``kedro run --pipelines=gmf`` with epochs enough to outlast the test."""
    synthetic = ",".join(
        f"data.synthetic.{k}={v}" for k, v in SMALL_DATA["data"]["synthetic"].items()
    )
    command = [sys.executable, "-c", AS_FROM_A_TERMINAL, "run", "--pipelines=gmf"]
    command += ["--params", f"{synthetic},gmf.epochs=10000,gmf.patience=10000"]
    return process_group(command, project, log)


def wait_for(log: pathlib.Path, text: str, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no '{text}' in the run's output:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_a_second_run_stops_at_once_naming_the_lock_and_its_holder(
    project_copy, tmp_path_factory, monkeypatch
):
    kedro_run(project_copy, "most_popular", SMALL_DATA)  # a model to recommend from, below
    log = tmp_path_factory.mktemp("logs") / "gmf.log"
    with start_slow_run(project_copy, log) as other:
        wait_for(log, "gmf epoch 1/", other)
        runs_before = len(mlflow_runs(project_copy))
        started = time.monotonic()
        with pytest.raises(RunLocked) as refused:
            kedro_run(project_copy, "most_popular", SMALL_DATA)
        assert time.monotonic() - started < 10
        message = str(refused.value)
        assert str(project_copy / LOCK_FILE) in message and f"PID {other.pid}" in message
        assert len(mlflow_runs(project_copy)) == runs_before  # the refused run logged nothing

        # reading is free while a run holds the lock, from any working directory
        monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
        service = RecommendationService.from_project(
            project_copy, "most_popular", params=SMALL_DATA
        )
        assert len(service.recommend([], k=3).items) == 3

        os.kill(other.pid, signal.SIGKILL)  # killed hard: its lock file stays, its run RUNNING
        other.wait(timeout=30)
    killed = mlflow_runs(project_copy)[-1]
    assert killed.info.status == "RUNNING" and killed.data.tags["neurec.pid"] == str(other.pid)

    kedro_run(project_copy, "most_popular", SMALL_DATA)  # the lock died with its process
    statuses = {run.info.run_id: run.info.status for run in mlflow_runs(project_copy, True)}
    assert statuses[killed.info.run_id] == "KILLED"
    assert list(statuses.values()).count("RUNNING") == 0


def test_ctrl_c_during_kedro_run_records_the_mlflow_run_as_killed(project_copy, tmp_path):
    log = tmp_path / "gmf.log"
    with start_slow_run(project_copy, log) as run:
        wait_for(log, "gmf epoch 1/", run)
        os.kill(run.pid, signal.SIGINT)
        try:
            assert run.wait(timeout=120) != 0
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running after Ctrl-C:\n{log.read_text()[-3000:]}"
            ) from None
    (recorded,) = mlflow_runs(project_copy)
    assert recorded.info.status == "KILLED", log.read_text()[-3000:]
    assert {run.info.status for run in mlflow_runs(project_copy, True)} == {"KILLED"}  # gmf's
    assert recorded.info.end_time is not None
    assert not (project_copy / LOCK_FILE).exists()
    assert versions(project_copy, "gmf") == {"model": [], "results": []}

"""Shared fixtures: small synthetic splits, the real data folder, isolated Kedro runs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from neurec import workflow
from neurec.split import Split

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The read-only MovieLens copies beside the repo (never copied into it: licence)."""
    return Path(os.environ.get("NEUREC_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    folder = shared_data_dir()
    if not folder.exists():
        pytest.skip(f"real data folder {folder} not present")
    return folder


def make_split(source_params: dict, split_params: dict | None = None) -> Split:
    """The source's split, as the pipelines make it (``neurec.workflow.prepare``)."""
    split, _ = workflow.prepare(source_params, split_params)
    return split


@pytest.fixture(scope="session")
def synthetic_split() -> Split:
    """The default synthetic data set, leave-one-out."""
    return make_split({"source": "synthetic"})


@pytest.fixture(scope="session")
def empty_mlflow_store(request, tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made, kept in pytest's cache per MLflow version.

    A new store runs MLflow's whole chain of schema migrations (~10 s); every Kedro run in
    the tests would pay that, so project copies start from a copy of this one instead.
    """
    import mlflow

    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    folder = (
        cache.mkdir(f"mlflow-store-{mlflow.__version__}")
        if cache is not None
        else tmp_path_factory.mktemp("mlflow-store")
    )
    store = folder / "mlflow.db"
    if not store.exists():
        building = folder / f"building-{os.getpid()}.db"
        mlflow.MlflowClient(f"sqlite:///{building}").search_experiments()
        os.replace(building, store)  # atomic: a parallel session never sees half a store
    return store


def copy_project(target: Path, mlflow_store: Path) -> Path:
    """The project's conf/, pyproject and .telemetry, an empty src/ and ``mlflow_store``
    (as mlflow.db) in ``target``; see ``project_copy``."""
    shutil.copytree(PROJECT_ROOT / "conf", target / "conf")
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, target / name)
    shutil.copy(mlflow_store, target / "mlflow.db")
    (target / "src").mkdir()
    return target


@pytest.fixture
def project_copy(tmp_path, monkeypatch, empty_mlflow_store) -> Iterator[Path]:
    """A copy of the project's conf/, pyproject and .telemetry (no consent) in tmp, as cwd:
    runs write only there (data/, and the MLflow store mlflow.db with artifacts in mlruns/)."""
    import mlflow

    copy_project(tmp_path, empty_mlflow_store)
    monkeypatch.chdir(tmp_path)
    # conf/base/mlflow.yml reads MLFLOW_TRACKING_URI, and MLflow exports the store it last
    # used there: without this a run would log to the user's server or the previous test's
    # store, not to this copy's default one.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)

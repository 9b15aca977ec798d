"""Nothing half-written: atomic saves, one run per project, failed runs leave no new version."""

from __future__ import annotations

import pathlib
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from fsspec.implementations.local import LocalFileOpener
from kedro.config import OmegaConfigLoader
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import generate_timestamp
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.plotly import JSONDataset as PlotlyJSONDataset
from kedro_datasets.text import TextDataset

from neurec.datasets import TEMPORARY_SUFFIX, Atomic, ModelDataset, TrainedModels
from neurec.models import registry
from tests.conftest import PROJECT_ROOT


def a_figure() -> plt.Figure:
    figure, axes = plt.subplots()
    axes.plot(range(200), range(200))
    return figure


SAMPLES = {  # something of each kind the catalog saves, large enough to be written in chunks
    ParquetDataset: lambda: pd.DataFrame({"user": range(5000), "item": range(5000)}),
    JSONDataset: lambda: {"values": list(range(5000))},
    TextDataset: lambda: "a line of the report\n" * 2000,
    MatplotlibDataset: a_figure,
    PlotlyJSONDataset: lambda: go.Figure(go.Scatter(x=list(range(2000)), y=list(range(2000)))),
    ModelDataset: lambda: registry()["most_popular"].from_params({}, 50, 3000),
}


def catalog_entries() -> dict[str, dict[str, Any]]:
    """Every entry of conf/base/catalog.yml, dataset factories resolved for the model ease."""
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="")
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

    def torch_save(obj, path, *args, **kwargs):
        pathlib.Path(path).write_bytes(b"half a model")
        raise OSError("No space left on device")

    monkeypatch.setattr(LocalFileOpener, "write", fsspec_write)
    monkeypatch.setattr(torch, "save", torch_save)


@pytest.mark.parametrize("name", sorted(catalog_entries()))
def test_every_catalog_entry_saves_a_whole_file_or_none(name, tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous file (or latest version) as it was and
    no temporary file behind. Runs over the whole catalog: a new entry can't bypass it."""
    entry = catalog_entries()[name]
    dataset = build(name, entry, tmp_path)
    if isinstance(dataset, TrainedModels):
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

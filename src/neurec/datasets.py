"""Kedro datasets: trained models saved with the config that built them, and atomic files.

Passing ``nn.Module`` objects between nodes through MemoryDataset deep-copies them and
loses them at the end of the run; instead a trained model is written to disk as
``{"name", "config", "n_users", "n_items", "state", "data_fingerprint", "dataset_key"}``
and rebuilt from the registry on load, so it can be reloaded without the training code's
defaults. The fingerprint names the split it was trained on (``neurec.provenance``), the
key the data set it was saved under (``neurec.dataset_key``); files saved before either
was recorded load with None, and serving refuses a file without a fingerprint.

Every file a run writes appears whole or not at all: ``save_model``, the ``Atomic``
wrapper (for kedro-datasets' file datasets) and ``ParquetChunks`` (a table streamed in chunks)
write to a temporary name in the target's folder and rename it into place, so a crash,
``kill -9`` or a second reader never sees half a file. ``SplitDataset`` does the same with
a folder: a split is written whole into a temporary folder, then renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from kedro.io import AbstractDataset, AbstractVersionedDataset, DatasetError, Version
from kedro.io.core import get_filepath_str, get_protocol_and_path, parse_dataset_definition

from neurec.errors import DataError
from neurec.files import torch_save_atomically
from neurec.interactions import Interactions
from neurec.models import Recommender, registry
from neurec.provenance import check_trained_on
from neurec.report.archive import ResultsArchive, StudyArchive
from neurec.split import Split


def model_payload(model: Recommender) -> dict[str, Any]:
    return {
        "name": model.name,
        "config": dataclasses.asdict(model.config),
        "n_users": model.n_users,
        "n_items": model.n_items,
        "state": model.state(),
        "data_fingerprint": model.data_fingerprint,
        "dataset_key": model.dataset_key,
    }


def model_from_payload(payload: dict[str, Any], origin: str) -> Recommender:
    models = registry()
    name = payload.get("name")
    if name not in models:
        raise DatasetError(f"{origin}: model '{name}' is not a registered model")
    model = models[name].from_params(payload["config"], payload["n_users"], payload["n_items"])
    model.load_state(payload["state"])
    model.data_fingerprint = payload.get("data_fingerprint")
    model.dataset_key = payload.get("dataset_key")
    return model


def save_model(model: Recommender, path: Path, dataset_key: str | None = None) -> None:
    """Write atomically: a crash mid-save leaves the previous file (or none), not half a file.

    ``dataset_key``: the data set the file is saved under, recorded in it (default: the
    model's own ``dataset_key``).
    """
    payload = model_payload(model)
    if dataset_key is not None:
        payload["dataset_key"] = dataset_key
    torch_save_atomically(payload, path)


def load_model(path: Path) -> Recommender:
    # weights_only: configs are plain Python values, the state is tensors
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return model_from_payload(payload, str(path))


class ModelDataset(AbstractVersionedDataset[Recommender, Recommender]):
    """A registered recommender on the local file system (``.pt``), optionally versioned.

    ``dataset_key``: the data set this entry's files belong to (``${dataset_key:}`` in the
    catalog): written into every model saved, and a model served from here must carry it.
    """

    def __init__(
        self, filepath: str, version: Version | None = None, dataset_key: str | None = None
    ) -> None:
        super().__init__(PurePosixPath(Path(filepath).as_posix()), version)
        self._dataset_key = dataset_key

    def load(self) -> Recommender:
        return load_model(Path(self._get_load_path()))

    def load_to_serve(self, name: str, fingerprint: str) -> Recommender:
        """Load the model to serve as ``name`` on the split whose fingerprint is given;
        another model class, data set or split is refused (``check_trained_on``)."""
        path = Path(self._get_load_path())
        model = load_model(path)
        check_trained_on(model, str(path), name, fingerprint, self._dataset_key)
        return model

    def save(self, data: Recommender) -> None:
        save_model(data, Path(self._get_save_path()), self._dataset_key)

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).exists()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": str(self._filepath),
            "version": self._version,
            "dataset_key": self._dataset_key,
        }


ANY_MODEL = "<model>"  # in messages about a data set without any trained model


@dataclass(frozen=True)
class ModelShelf:
    """The trained models in a folder, each loaded (latest version) only when asked for.

    ``dataset_key``: the data set the folder belongs to (``data/06_models/<key>``); its
    sibling folders hold the models of other data sets.
    """

    path: Path
    dataset_key: str | None = None

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.path.glob("*.pt"))

    def elsewhere(self, name: str = "*") -> list[str]:
        """The other data sets (keys) with a trained ``name`` model (any model for ``*``)."""
        if self.dataset_key is None:
            return []
        # a versioned model is a folder <model>.pt/; a checkpoint is a file
        folders = (p for p in self.path.parent.glob(f"*/{name}.pt") if p.is_dir())
        return sorted({p.parent.name for p in folders} - {self.dataset_key})

    def load(self, name: str, fingerprint: str) -> Recommender:
        """The latest ``name`` model, checked against the current split's ``fingerprint``."""
        dataset = ModelDataset(str(self.path / f"{name}.pt"), Version(None, None), self.dataset_key)
        if not dataset.exists():
            raise DataError(self.missing(name))
        return dataset.load_to_serve(name, fingerprint)

    def missing(self, name: str) -> str:
        """Why model ``name`` (:data:`ANY_MODEL`: any) cannot be served from here: what is
        trained, on which other data sets, and the command that trains it."""
        train = f"kedro run --pipelines={name}"
        trained = ", ".join(self.names()) or "none"
        if self.dataset_key is None:
            return (
                f"no trained model '{name}' in {self.path} (trained: {trained}); "
                f"train it first: {train}"
            )
        wanted = "no model was trained" if name == ANY_MODEL else f"no trained model '{name}'"
        message = (
            f"{wanted} for data set {self.dataset_key} in {self.path} (trained for it: {trained}); "
        )
        others = self.elsewhere("*" if name == ANY_MODEL else name)
        if others:
            which = "models were" if name == ANY_MODEL else f"'{name}' was"
            message += (
                f"{which} trained on data set {' and '.join(others)}: run with the data and "
                f"split settings of {'one of them' if len(others) > 1 else 'that one'}, or "
                f"train it on {self.dataset_key}: "
            )
        else:
            message += "train it first: "
        return f"{message}{train} with this run's --params and --env"


class TrainedModels(AbstractDataset[None, ModelShelf]):
    """Read-only: every model the ``"{model}_model"`` factory saved under ``path``.

    For nodes whose model is a parameter (``recommend.model``): a pipeline's inputs are
    fixed when it is built, so the node takes this shelf and picks the model by name.
    """

    def __init__(self, path: str, dataset_key: str | None = None) -> None:
        self._path = Path(path)
        self._dataset_key = dataset_key

    def load(self) -> ModelShelf:
        """The shelf; a data set without any trained model stops here, before its split
        (perhaps never made either) is read."""
        shelf = ModelShelf(self._path, self._dataset_key)
        if self._dataset_key is not None and not shelf.names():
            raise DataError(shelf.missing(ANY_MODEL))
        return shelf

    def save(self, data: None) -> None:
        raise DatasetError("trained models are read-only here; they are saved as '<model>_model'")

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path.as_posix(), "dataset_key": self._dataset_key}


class SavedResults(AbstractDataset[None, ResultsArchive]):
    """Read-only: every version of every model's results and per-user metrics that the
    ``"{model}_results"`` / ``"{model}_user_metrics"`` factories saved (their paths, with
    ``*`` for ``{model}``), for the report to keep the latest results of the models a run
    did not train."""

    def __init__(self, results: str, user_metrics: str) -> None:
        self._archive = ResultsArchive(results, user_metrics)

    def load(self) -> ResultsArchive:
        return self._archive

    def save(self, data: None) -> None:
        raise DatasetError(
            "saved results are read-only here; they are saved as '<model>_results' and "
            "'<model>_user_metrics'"
        )

    def _describe(self) -> dict[str, Any]:
        return {"results": self._archive.results, "user_metrics": self._archive.user_metrics}


class SavedStudies(AbstractDataset[None, StudyArchive]):
    """Read-only: the tuning studies of the data set (``kedro run --pipelines=tune`` writes
    them into the tuning folder), for the report to show their results and charts."""

    def __init__(self, path: str) -> None:
        self._archive = StudyArchive(path)

    def load(self) -> StudyArchive:
        return self._archive

    def save(self, data: None) -> None:
        raise DatasetError(
            "saved studies are read-only here; `kedro run --pipelines=tune` writes them"
        )

    def _describe(self) -> dict[str, Any]:
        return {"path": self._archive.folder}


TEMPORARY_SUFFIX = ".partial"  # ".<name>.<random>.partial" beside the file being written


class AtomicWrites:
    """An fsspec file system whose files opened for writing appear whole or not at all.

    Wraps the file system a dataset writes through (``dataset._fs``): ``open(path, "w"|"wb")``
    writes to a hidden temporary file in the same folder, moved onto ``path`` (a rename on
    a local disk) when the ``with`` block ends normally and deleted when it raises.
    Everything else (reads, ``exists``, ``glob`` ...) goes to the wrapped file system.
    """

    def __init__(self, fs: Any) -> None:
        self.wrapped = fs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def __reduce__(self) -> tuple[type, tuple[Any]]:  # picklable for ParallelRunner
        return AtomicWrites, (self.wrapped,)

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if not set(mode) & set("wax+"):
            return self.wrapped.open(path, mode, **kwargs)
        if mode.replace("b", "").replace("t", "") != "w":
            raise DatasetError(f"{path}: atomic saves write whole files (mode 'w'), not '{mode}'")
        return AtomicFile(self.wrapped, path, mode, kwargs)


class AtomicFile:
    """A file being written under a temporary name; ``close`` publishes it, ``discard`` drops it."""

    def __init__(self, fs: Any, path: str, mode: str, kwargs: dict[str, Any]) -> None:
        folder, name = posixpath.split(path)
        self._fs, self.target = fs, path
        self.temporary = posixpath.join(
            folder, f".{name}.{uuid.uuid4().hex[:12]}{TEMPORARY_SUFFIX}"
        )
        self._file = fs.open(self.temporary, mode, **kwargs)
        self._finished = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> Any:
        return self._file.__enter__()

    def __exit__(self, error_type: type[BaseException] | None, *_: Any) -> None:
        if error_type is None:
            self.close()
        else:
            self.discard()

    def close(self) -> None:
        if self._finished:  # the writer may close the file itself inside the with block
            return
        self._finished = True
        try:
            self._file.close()
            self._fs.mv(self.temporary, self.target)
        except BaseException:
            self._remove_temporary()
            raise

    def discard(self) -> None:
        self._finished = True
        self._remove_temporary()

    def _remove_temporary(self) -> None:
        self._file.close()
        if self._fs.exists(self.temporary):
            self._fs.rm(self.temporary)


class Atomic(AbstractDataset):
    """Catalog wrapper: the inner ``dataset`` (any kedro-datasets file dataset, also inside
    ``MlflowArtifactDataset``) with its saves made atomic by :class:`AtomicWrites`.

    ``versioned: true`` goes on the ``Atomic`` entry, so the inner dataset shares the run's
    save version. The catalog gets the inner dataset itself (its type, preview and
    description unchanged), not a wrapper object.
    """

    def __new__(cls, dataset: dict[str, Any], version: Version | None = None) -> AbstractDataset:  # type: ignore[misc]
        inner_class, inner_args = parse_dataset_definition(dataset)
        if "version" in inner_args:
            raise DatasetError(
                f"{dataset['type']}: put 'versioned: true' on the neurec.datasets.Atomic "
                "entry, not on its inner dataset (which would draw its own save version)"
            )
        if version is not None:
            inner_args["version"] = version
        inner = inner_class(**inner_args)
        if not hasattr(inner, "_fs"):
            raise DatasetError(
                f"neurec.datasets.Atomic wraps datasets that write through fsspec; "
                f"{dataset['type']} does not"
            )
        inner._fs = AtomicWrites(inner._fs)
        return inner


class CheckpointFolder(AbstractDataset[None, Path]):
    """Read-only: hands a node a folder it writes in itself, in the middle of its work.

    The training loop writes a checkpoint (``<model>.pt``) after every epoch and removes it
    when training ends; Optuna writes its study after every trial (``neurec.tuning``). So
    they are no node's output; this entry puts the folder in the catalog (its path
    relative to the project, like every other file).
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def load(self) -> Path:
        return self._path

    def save(self, data: None) -> None:
        raise DatasetError("the checkpoint folder is read-only; the training loop writes in it")

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path.as_posix()}


class ParquetChunks(AbstractDataset[Iterable[pd.DataFrame] | pd.DataFrame, pd.DataFrame]):
    """One parquet file written from a stream of DataFrames, holding one chunk at a time.

    ``save`` takes an iterable of DataFrames (or one DataFrame) and writes each as a row
    group with ``pyarrow.parquet.ParquetWriter``, so memory holds one chunk, not the table.
    Every chunk must have the first chunk's columns and dtypes. The file is written under a
    temporary name in the target's folder (:class:`AtomicWrites`) and renamed into place
    when the last chunk is written: an exception while chunks are produced or written leaves
    the previous file as it was and no temporary. ``load`` reads the whole table, or with
    ``load_args`` (``columns``, ``filters``, ... of ``pandas.read_parquet``) a part of it.

    The node returns a lazy iterable (a generator object) rather than being a generator
    function: Kedro's runner saves each chunk of a generator *function* with a separate
    ``catalog.save`` call, and each such save would replace the file with one chunk (or,
    appending, leave a half-written file after a failure). Returning the iterable hands the
    whole stream to one ``save``, which can publish one complete file or none.
    """

    def __init__(self, filepath: str, load_args: dict[str, Any] | None = None) -> None:
        protocol, path = get_protocol_and_path(filepath)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol)
        self._load_args = dict(load_args or {})

    @property
    def _path(self) -> str:
        return get_filepath_str(self._filepath, self._protocol)

    def load(self) -> pd.DataFrame:
        return pd.read_parquet(self._path, filesystem=self._fs, **self._load_args)

    def save(self, data: Iterable[pd.DataFrame] | pd.DataFrame) -> None:
        chunks = iter([data] if isinstance(data, pd.DataFrame) else data)
        self._fs.mkdirs(str(self._filepath.parent), exist_ok=True)
        with AtomicWrites(self._fs).open(self._path, "wb") as file:
            first = next(chunks, None)
            if not isinstance(first, pd.DataFrame):
                raise DatasetError(
                    f"{self._path}: expected DataFrames to write, got "
                    f"{'no chunk' if first is None else type(first).__name__}"
                )
            schema = pa.Schema.from_pandas(first, preserve_index=False)
            with pq.ParquetWriter(file, schema) as writer:
                writer.write_table(pa.Table.from_pandas(first, schema, preserve_index=False))
                for number, chunk in enumerate(chunks, start=2):
                    writer.write_table(self._as_table(chunk, schema, number))

    def _as_table(self, chunk: Any, schema: pa.Schema, number: int) -> pa.Table:
        expected = (
            f"the first chunk's columns and dtypes ({schema.to_string(show_schema_metadata=False)})"
        )
        if not isinstance(chunk, pd.DataFrame) or list(chunk.columns) != schema.names:
            found = list(chunk.columns) if isinstance(chunk, pd.DataFrame) else type(chunk).__name__
            raise DatasetError(f"{self._path}: chunk {number} is {found}, expected {expected}")
        try:
            return pa.Table.from_pandas(chunk, schema, preserve_index=False)
        except (TypeError, ValueError, pa.ArrowException) as error:
            raise DatasetError(
                f"{self._path}: chunk {number} does not fit {expected}: {error}"
            ) from error

    def _exists(self) -> bool:
        return self._fs.exists(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._path, "load_args": self._load_args}


SPLIT_PARTS = ("train", "validation", "test")
SPLIT_FILE = "split.json"  # sizes, statistics and fingerprint; the tables beside it


class SplitDataset(AbstractDataset[Split, Split]):
    """A :class:`~neurec.split.Split` as a folder on the local disk: ``train.parquet``,
    ``validation.parquet``, ``test.parquet`` (index-space user, item, rows in the split's
    user-then-time order), ``user_index.parquet``, ``item_index.parquet`` and ``split.json``.

    Saved whole or not at all: the files are written into a hidden temporary folder beside
    ``path`` (through fsspec) and the folder is renamed into place; a previous split is
    moved aside first and removed after, or put back if the rename fails.
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._fs = fsspec.filesystem("file")

    def load(self) -> Split:
        folder = self._path
        if not (folder / SPLIT_FILE).exists():
            raise DatasetError(
                f"{folder}: no split here; make one with `kedro run --pipelines=data` "
                "(or any model's pipeline)"
            )
        meta = json.loads((folder / SPLIT_FILE).read_text())
        n_users, n_items = meta["n_users"], meta["n_items"]
        parts = {}
        for name in SPLIT_PARTS:
            table = pd.read_parquet(folder / f"{name}.parquet")
            parts[name] = Interactions(
                user=table["user"].to_numpy(dtype=np.int64),
                item=table["item"].to_numpy(dtype=np.int64),
                n_users=n_users,
                n_items=n_items,
            )
        return Split(
            **parts,
            user_index=pd.read_parquet(folder / "user_index.parquet"),
            item_index=pd.read_parquet(folder / "item_index.parquet"),
            statistics=meta["statistics"],
            fingerprint=meta["fingerprint"],
        )

    def save(self, data: Split) -> None:
        target = self._path
        target.parent.mkdir(parents=True, exist_ok=True)
        stamp = uuid.uuid4().hex[:12]
        temporary = target.parent / f".{target.name}.{stamp}{TEMPORARY_SUFFIX}"
        previous = target.parent / f".{target.name}.{stamp}.previous"
        try:
            temporary.mkdir()
            for name in SPLIT_PARTS:
                part = getattr(data, name)
                self._write_table(
                    pd.DataFrame({"user": part.user, "item": part.item}), temporary / name
                )
            self._write_table(data.user_index, temporary / "user_index")
            self._write_table(data.item_index, temporary / "item_index")
            meta = {
                "n_users": data.n_users,
                "n_items": data.n_items,
                "statistics": data.statistics,
                "fingerprint": data.fingerprint,
            }
            with self._fs.open(str(temporary / SPLIT_FILE), "wb") as file:
                file.write(json.dumps(meta, indent=2, default=str).encode())
            if target.exists():
                target.rename(previous)
            temporary.rename(target)
        except BaseException:
            if previous.exists() and not target.exists():
                previous.rename(target)
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        shutil.rmtree(previous, ignore_errors=True)

    def _write_table(self, table: pd.DataFrame, stem: Path) -> None:
        with self._fs.open(f"{stem}.parquet", "wb") as file:
            table.to_parquet(file, index=False)

    def _exists(self) -> bool:
        return (self._path / SPLIT_FILE).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path.as_posix()}

"""The folder where neural models keep their per-epoch checkpoints, as a catalog entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class CheckpointFolder(AbstractDataset[None, Path]):
    """Read-only: hands the train nodes the folder for ``<model>.pt`` checkpoints.

    The training loop writes a checkpoint in the middle of a node, after every epoch, and
    removes it when training ends, so it is no node's output; this entry puts the folder
    in the catalog (its path relative to the project, like every other file).
    """

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def load(self) -> Path:
        return self._path

    def save(self, data: None) -> None:
        raise DatasetError("the checkpoint folder is read-only; the training loop writes in it")

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path.as_posix()}

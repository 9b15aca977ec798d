"""Writing a file whole or not at all, for the plain-Python parts (no Kedro here)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """``write(file)`` into a temporary file beside ``path``, flushed to disk, then renamed
    over it: a crash mid-write leaves the previous file (or none), never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def torch_save_atomically(payload: Any, path: Path) -> None:
    """``torch.save`` through :func:`write_atomically`."""
    write_atomically(path, lambda file: torch.save(payload, file))

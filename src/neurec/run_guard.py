"""Kedro hooks that keep a project's files consistent when runs overlap, fail or are stopped.

* One ``kedro run`` per project at a time: a run holds an exclusive lock on
  ``data/.run.lock`` (``flock``) from ``before_pipeline_run`` to its end; a second run stops
  at once with :class:`RunLocked`, naming the file and the process holding it. Only runs
  take it: ``kedro viz``, a notebook's ``catalog.load`` and ``RecommendationService`` read
  freely (every file is written atomically, see ``neurec.datasets.Atomic``).
* A failed run leaves no new version behind: on ``on_pipeline_error`` the versions it saved
  (folders named after the run's save version, e.g. ``data/06_models/ease.pt/<version>/``)
  are removed, so the recommend pipeline or a later run never picks up its model as the
  latest one.
* Ctrl-C during a run raises :class:`RunInterrupted`, a ``KeyboardInterrupt`` that is also an
  ``Exception``: Kedro calls ``on_pipeline_error`` for exceptions only, so a plain
  ``KeyboardInterrupt`` would skip the clean-up above (and MLflow's, see ``neurec.hooks``).
  A second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import AbstractVersionedDataset

from neurec.errors import NeurecError

LOCK_FILE = Path("data") / ".run.lock"

logger = logging.getLogger(__name__)


class RunLocked(NeurecError):
    """Another run holds this project's lock (an expected error: one line, no traceback)."""


class RunInterrupted(KeyboardInterrupt, Exception):
    """Ctrl-C during a run; an ``Exception`` too, so Kedro's error hooks run."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on a file that records who holds it.

    The file is removed on release (while still locked), so a file left behind belongs to
    a run that died without releasing it (``kill -9``); the lock itself dies with its
    process either way.
    """

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path, self._descriptor = path, descriptor

    @classmethod
    def acquire(cls, path: Path, record: dict[str, Any]) -> RunLock:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_record(descriptor)
                os.close(descriptor)
                raise RunLocked(_locked_message(path, holder)) from None
            if _is_current(descriptor, path):
                break
            os.close(descriptor)  # released (and removed) between our open and flock
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(record).encode(), 0)
        return cls(path, descriptor)

    def release(self) -> None:
        if self._descriptor is None:
            return
        self.path.unlink(missing_ok=True)
        fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        os.close(self._descriptor)
        self._descriptor = None


def _read_record(descriptor: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(descriptor, 4096, 0) or b"{}")
    except ValueError:
        return {}


def _is_current(descriptor: int, path: Path) -> bool:
    try:
        return os.fstat(descriptor).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _locked_message(path: Path, holder: dict[str, Any]) -> str:
    who = (
        f"PID {holder['pid']} on {holder.get('host', '?')} (pipeline "
        f"{holder.get('pipeline', '?')}, started {holder.get('started', '?')})"
        if "pid" in holder
        else "a run that is starting"
    )
    return (
        f"another kedro run is using this project: {path} is locked by {who}. Two runs at "
        "once overwrite each other's files; wait for it to finish or stop it."
    )


def remove_run_versions(catalog: Any, names: Iterable[str], version: str) -> list[Path]:
    """Delete the version ``version`` of every versioned local dataset among ``names``."""
    removed = []
    for name in sorted(names):
        dataset = catalog.get(name)
        if not isinstance(dataset, AbstractVersionedDataset) or dataset._version is None:
            continue
        folder = Path(str(dataset._filepath)) / version
        if folder.is_dir():
            shutil.rmtree(folder)
            removed.append(folder)
            with contextlib.suppress(OSError):  # this run's first version: its folder too
                folder.parent.rmdir()
    return removed


class RunGuardHooks:
    def __init__(self) -> None:
        self._lock: RunLock | None = None
        self._ctrl_c_handler: Any = None

    @hook_impl(tryfirst=True)  # before kedro-mlflow opens an MLflow run for a refused run
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._finish()  # a run of this process that never reached its end hooks
        names = run_params.get("pipeline_names") or ["__default__"]
        self._lock = RunLock.acquire(
            Path(run_params["project_path"]) / LOCK_FILE,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "pipeline": "+".join(names),
                "save_version": run_params["run_id"],
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
        # Ctrl-C as Python would take it: not in a thread (which can't), nor where it is ignored
        # (a script's background job `kedro run &`, which Ctrl-C of the script must not stop)
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            previous = signal.signal(signal.SIGINT, self._interrupt)
            self._ctrl_c_handler = signal.SIG_DFL if previous is None else previous

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        self._finish()

    @hook_impl(trylast=True)
    def on_pipeline_error(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        removed = remove_run_versions(catalog, pipeline.datasets(), run_params["run_id"])
        for folder in removed:
            logger.warning("run failed: removed the version it saved, %s", folder)
        self._finish()

    def _interrupt(self, signum: int, frame: Any) -> None:
        self._restore_ctrl_c()  # a second Ctrl-C interrupts the clean-up too
        raise RunInterrupted("run interrupted (Ctrl-C)")

    def _restore_ctrl_c(self) -> None:
        if self._ctrl_c_handler is not None:
            signal.signal(signal.SIGINT, self._ctrl_c_handler)
            self._ctrl_c_handler = None

    def _finish(self) -> None:
        self._restore_ctrl_c()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

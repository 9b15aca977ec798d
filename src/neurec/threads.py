"""How many CPU threads torch uses in each process of a run: the ``threads`` parameters block.

torch starts as many intra-op threads as the machine has physical cores, whatever else runs
on it. The models here are small (hidden sizes of 64, batches of a few hundred rows), so a
second thread gains little even on an idle machine, while on a shared one every extra
thread competes with other processes for the same cores: a parallel region ends only when
its slowest thread has had its turn, and the default run took 14-20 minutes instead of 2 on
a loaded 2-core machine. ``auto`` therefore takes the cores that are free when the run
starts: the cores this process may use (``os.sched_getaffinity``, which follows ``taskset``
and cgroup cpusets) minus the 1-minute load average (processes running or waiting for a
core), at least 1 and at most torch's own default (which already follows
``OMP_NUM_THREADS``). The figure is logged and recorded (MLflow, benchmark JSON), so a run
can be repeated with the same count: ``--params threads.torch=<n>``.

The count changes speed and, at the level of float rounding, some results: torch splits a
few reductions by thread (in SASRec's backward pass: weights 6e-5 apart after one epoch of
1 vs 2 threads), while GMF, Mult-VAE and EASE come out identical
(``tests/test_threads.py``). Repeating a run exactly takes the same count, hence it is
recorded; ``threads.torch: 1`` gives the same numbers on every machine.

Applied once per process: by a hook before a ``kedro run``'s first node, by
``python -m neurec.benchmark``, in every data-parallel worker (the run's threads shared out
over the workers of one machine) and in the serving benchmark's server. Plain Python.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

AUTO = "auto"

logger = logging.getLogger(__name__)

# torch's default intra-op thread count, read before this module first changes it
_torch_default: int | None = None


@dataclass
class ThreadsConfig:
    """The ``threads`` parameters block."""

    # intra-op threads of torch per process: auto (the free cores, see the module) or a count
    torch: int | str = AUTO

    def __post_init__(self) -> None:
        if self.torch == AUTO:
            return
        if isinstance(self.torch, bool) or not isinstance(self.torch, int) or self.torch < 1:
            raise ValueError(f"torch: expected '{AUTO}' or a positive integer, got {self.torch!r}")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores left by other processes: ``cores`` minus the rounded 1-minute load average,
    at least 1. The load average counts this process too when it has been busy before (a
    notebook that just trained), so the estimate errs towards fewer threads."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # unavailable: take every core as free
            load = 0.0
    return max(1, min(cores, cores - round(load)))


def torch_default_threads() -> int:
    """torch's own intra-op default for this process (physical cores or OMP_NUM_THREADS)."""
    global _torch_default
    if _torch_default is None:
        _torch_default = torch.get_num_threads()
    return _torch_default


def resolve_threads(config: ThreadsConfig) -> int:
    """The intra-op thread count ``config`` asks for on this machine, now."""
    if config.torch != AUTO:
        return int(config.torch)
    return max(1, min(free_cores(), torch_default_threads()))


def set_threads(count: int) -> int:
    """Use ``count`` intra-op threads in this process, and as many inter-op threads when torch
    still allows it (only before its first parallel work); returns ``count``."""
    torch_default_threads()  # recorded before it changes
    torch.set_num_threads(count)
    if torch.get_num_interop_threads() != count:
        try:
            torch.set_num_interop_threads(count)
        except RuntimeError:  # set already, or parallel work has started: keep that pool
            logger.debug("torch inter-op threads stay %d", torch.get_num_interop_threads())
    return count


def share(threads: int, processes: int) -> int:
    """Threads per process when ``processes`` processes of one machine share ``threads``."""
    return max(1, threads // max(1, processes))


def apply_threads(config: ThreadsConfig, processes: int = 1) -> int:
    """Resolve ``config``, share it out over ``processes`` processes of this machine (data-
    parallel workers) and apply this process's share; logs and returns it."""
    count = set_threads(share(resolve_threads(config), processes))
    logger.info(
        "torch threads: %d intra-op, %d inter-op (threads.torch: %s; %d usable cores%s)",
        count,
        torch.get_num_interop_threads(),
        config.torch,
        usable_cores(),
        f"; {processes} processes" if processes > 1 else "",
    )
    return count

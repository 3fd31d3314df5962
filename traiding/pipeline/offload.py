"""Where a run's CPU-heavy work runs: inline, or in a pool of worker processes.

The operator drives every run on one event loop. A data check or a backtest computed on that loop would hold
up every other run's API calls and status writes for as long as it takes, so the operator hands such work to
a `ProcessOffload`: a pool of worker processes sized to the CPUs the process may use. `traiding run` drives
one run and has nothing to hold up: it computes `INLINE`.

What runs in a worker is a plain function of `traiding.pipeline.compute` (it imports only the domain, so a
worker starts without ccxt, kopf or the Kubernetes client) called with picklable arguments (numpy arrays,
dataclasses, dicts). Workers are started with `spawn` (never `fork`: the operator runs threads and an event
loop) and run at a lower priority than the loop: they only ever compute, and the loop's API calls are the ones
someone waits for.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

WORKER_NICENESS = 5
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


class Offload(Protocol):
    async def run(self, fn: Callable[..., T], /, *args: Any) -> T: ...


class InlineOffload:
    """Computes on the caller's loop: for a process that drives one run."""

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        return fn(*args)


INLINE = InlineOffload()


def cpu_budget(cgroup_cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a container's CPU limit)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit readable: the affinity decides
    return max(1, cpus)


def _lower_priority() -> None:
    os.nice(WORKER_NICENESS)


class ProcessOffload:
    """A pool of `workers` processes (default: `cpu_budget()`), started on first use."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or cpu_budget()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_lower_priority
        )

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): the pool is unusable from then on. The work is a pure
            # function, so it is simply computed again in a fresh pool.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()
            return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

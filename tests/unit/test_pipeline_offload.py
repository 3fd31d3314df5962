"""Where CPU-heavy phase work runs: inline, or in a pool of worker processes sized to the machine."""

from __future__ import annotations

import asyncio
import itertools
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from traiding.pipeline.offload import INLINE, ProcessOffload, cpu_budget
from traiding.pipeline.price_series import MAX_POINTS, PriceSeries, append_capped


def process_id() -> int:
    return os.getpid()


def niceness() -> int:
    return os.nice(0)


def die() -> None:
    os._exit(3)  # as a worker killed by the OOM killer


def test_work_runs_in_other_processes_at_a_lower_priority_and_inline_in_this_one() -> None:
    async def main() -> tuple[int, int, int]:
        offload = ProcessOffload(2)
        try:
            return await offload.run(process_id), await offload.run(niceness), await INLINE.run(process_id)
        finally:
            offload.close()

    worker, nice, inline = asyncio.run(main())
    assert worker != os.getpid() and inline == os.getpid()
    assert nice >= os.nice(0) + 5


def test_a_pool_whose_worker_died_is_replaced_and_keeps_working() -> None:
    async def main() -> int:
        offload = ProcessOffload(1)
        try:
            with pytest.raises(BrokenProcessPool):
                await offload.run(die)  # computed again in a fresh pool, which dies too: the error is real
            return await offload.run(process_id)
        finally:
            offload.close()

    assert asyncio.run(main()) != os.getpid()


def test_the_cpu_budget_is_the_affinity_capped_by_the_cgroup_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    assert cpu_budget(quota) == affinity
    quota.write_text("50000 100000\n")  # half a CPU: still one worker
    assert cpu_budget(quota) == 1
    quota.write_text(f"{(affinity + 4) * 100000} 100000\n")  # a limit above the affinity: the affinity
    assert cpu_budget(quota) == affinity
    assert cpu_budget(tmp_path / "absent") == affinity


def test_a_price_series_is_capped_keeping_its_first_and_newest_point_and_survives_a_save(tmp_path: Path) -> None:
    series = PriceSeries()
    for i in range(MAX_POINTS * 3):
        series.add("BTC/USDT", i * 60_000, 100.0 + i)
    points = series.points["BTC/USDT"]
    assert len(points) <= MAX_POINTS and points[0] == [0, 100.0]
    assert points[-1] == [(MAX_POINTS * 3 - 1) * 60_000, 100.0 + MAX_POINTS * 3 - 1]  # the newest is kept
    assert all(a[0] < b[0] for a, b in itertools.pairwise(points))
    path = tmp_path / "prices.json"
    series.save(path)
    loaded = PriceSeries.load(path)
    assert loaded.points == series.points
    assert loaded.arrays()["BTC/USDT"].shape == (len(points), 2)
    assert PriceSeries.load(tmp_path / "none.json").points == {}


def test_append_capped_keeps_at_most_the_cap() -> None:
    points: list[int] = []
    for i in range(10):
        append_capped(points, i, 4)
    assert len(points) <= 4 and points[0] == 0 and points[-1] == 9

"""The shared weight budget: waits instead of overspending, honours the exchange's count and Retry-After."""

from __future__ import annotations

import asyncio
import random

import pytest

from traiding_adapters.errors import RateLimited
from traiding_adapters.ratelimit import WeightBudget


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def budget(limit: float, time: FakeTime, safety: float = 1.0) -> WeightBudget:
    return WeightBudget(limit, safety=safety, clock=time.clock, sleep=time.sleep)


async def test_within_capacity_no_wait() -> None:
    time = FakeTime()
    b = budget(100, time)
    for _ in range(10):
        b.release(await b.acquire(10))
    assert time.sleeps == []
    assert b.used() == 100


async def test_over_capacity_waits_until_the_oldest_weight_leaves_the_window() -> None:
    time = FakeTime()
    b = budget(100, time)
    b.release(await b.acquire(60))
    time.now += 10
    b.release(await b.acquire(40))
    start = time.now
    b.release(await b.acquire(30))  # needs the first 60 gone: at start - 10 + 60
    assert time.now == pytest.approx(start + 50)
    assert b.used() == pytest.approx(70)


async def test_in_flight_weight_never_expires() -> None:
    time = FakeTime()
    b = budget(10, time)
    slow = await b.acquire(10)  # never released yet
    waiter = asyncio.create_task(b.acquire(5))
    for _ in range(50):
        await asyncio.sleep(0)
    time.now += 120  # far beyond the window: still in flight, still counted
    for _ in range(50):
        await asyncio.sleep(0)
    assert not waiter.done()
    b.release(slow)
    start = time.now
    b.release(await waiter)
    assert time.now >= start + 60 - 1e-6  # the window of the slow request started at its release


async def test_safety_fraction_caps_usage() -> None:
    time = FakeTime()
    b = budget(100, time, safety=0.5)
    for _ in range(5):
        b.release(await b.acquire(10))
    assert time.sleeps == []
    b.release(await b.acquire(10))
    assert time.sleeps, "the 6th call exceeds 50% of the limit and must wait"


async def test_header_weight_above_ours_is_honoured() -> None:
    time = FakeTime()
    b = budget(100, time)
    b.release(await b.acquire(10))
    b.observe_used_weight(95)  # other clients of the key spent more than we know
    assert b.used() == pytest.approx(95)
    b.release(await b.acquire(10))
    assert time.sleeps, "95 + 10 > 100 must wait"


async def test_header_below_ours_changes_nothing() -> None:
    time = FakeTime()
    b = budget(100, time)
    b.release(await b.acquire(50))
    b.observe_used_weight(20)  # a stale header from an earlier response
    assert b.used() == pytest.approx(50)


async def test_pause_for_retry_after_blocks_everyone() -> None:
    time = FakeTime()
    b = budget(1000, time)
    b.pause_for(30)
    start = time.now
    b.release(await b.acquire(1))
    assert time.now >= start + 30


async def test_a_long_ban_fails_fast_with_the_reason() -> None:
    time = FakeTime()
    b = WeightBudget(1000, clock=time.clock, sleep=time.sleep, max_pause_wait_s=30)
    b.pause_for(120)
    with pytest.raises(RateLimited, match="stop sending for 120 more seconds") as info:
        await b.acquire(1)
    assert info.value.retry_after_s == pytest.approx(120)
    assert time.sleeps == []


async def test_single_call_heavier_than_budget_goes_when_idle() -> None:
    time = FakeTime()
    b = budget(10, time)
    b.release(await b.acquire(50))
    assert time.sleeps == []


async def test_declared_limit_is_adopted() -> None:
    time = FakeTime()
    b = budget(6000, time)
    b.set_limit(100)
    assert b.capacity == pytest.approx(100)


async def test_concurrent_tasks_never_exceed_the_limit_in_any_window() -> None:
    """20 tasks hammer one budget; every sliding 60 s window of completed requests stays within the limit."""
    time = FakeTime()
    limit = 50.0
    b = budget(limit, time)
    rng = random.Random(3)
    log: list[tuple[float, float, float]] = []  # (booked, released, weight)

    async def run() -> None:
        for _ in range(15):
            weight = rng.choice([1, 2, 5])
            booking = await b.acquire(weight)
            booked = time.now
            await time.sleep(rng.random() * 0.5)  # the request's round trip
            b.release(booking)
            log.append((booked, time.now, weight))

    await asyncio.gather(*(run() for _ in range(20)))
    assert len(log) == 300
    # the exchange counts a request somewhere between booking and release: check both extremes
    for index in (0, 1):
        for entry in log:
            end = entry[index]
            in_window = sum(e[2] for e in log if end - 60 < e[index] <= end)
            assert in_window <= limit + 1e-9
    assert b.stats().peak_used <= limit

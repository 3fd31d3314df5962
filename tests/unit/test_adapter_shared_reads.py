"""Market data shared by the runs of a process: one fetch in flight per market, each candle fetched once."""

from __future__ import annotations

import asyncio

import numpy as np

from traiding.domain.candles import Candles
from traiding_adapters.shared_reads import Fresh, RecentCandles, SharedReads

MINUTE = 60_000


def candles(start_ms: int, end_ms: int) -> Candles:
    times = np.arange(start_ms, end_ms, MINUTE, dtype=np.int64)
    close = times.astype(np.float64) / MINUTE
    return Candles(times, close, close + 1, close - 1, close, close * 0 + 1)


class Market:
    """A fake exchange's candle endpoint: candles up to `now_ms` (the last one forming), counting fetches."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.fetches: list[tuple[int, int]] = []

    async def fetch(self, since_ms: int, until_ms: int) -> Candles:
        self.fetches.append((since_ms, until_ms))
        await asyncio.sleep(0.01)  # in flight for a moment: concurrent callers overlap
        return candles(since_ms, min(until_ms, self.now_ms + MINUTE))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_many_runs_polling_one_market_at_once_make_one_fetch() -> None:
    market, clock = Market(now_ms=100 * MINUTE), Clock()
    recent = RecentCandles(keep=50, clock=clock)

    async def main() -> list[Candles]:
        return await asyncio.gather(*(recent.since(90 * MINUTE, 10**15, market.fetch, 1.0) for _ in range(200)))

    answers = asyncio.run(main())
    assert market.fetches == [(90 * MINUTE, 10**15)]
    assert all(list(a.time) == list(answers[0].time) for a in answers)
    assert int(answers[0].time[-1]) == 100 * MINUTE  # up to the forming candle


def test_later_polls_fetch_only_from_the_newest_candle_on_and_closed_candles_come_from_memory() -> None:
    market, clock = Market(now_ms=100 * MINUTE), Clock()
    recent = RecentCandles(keep=50, clock=clock)
    asyncio.run(recent.since(90 * MINUTE, 10**15, market.fetch, 1.0))
    clock.now += 0.5
    asyncio.run(recent.since(95 * MINUTE, 10**15, market.fetch, 1.0))  # young enough: no fetch
    assert len(market.fetches) == 1
    market.now_ms, clock.now = 103 * MINUTE, clock.now + 1.0
    latest = asyncio.run(recent.since(95 * MINUTE, 10**15, market.fetch, 1.0))
    assert market.fetches[-1] == (100 * MINUTE, 10**15)  # from the candle that was forming, once
    assert list(latest.time) == [t * MINUTE for t in range(95, 104)]
    # A closed range it holds is answered without a fetch, whatever its age; an older one is not held.
    clock.now += 60
    held = recent.closed_between(96 * MINUTE, 99 * MINUTE)
    assert held is not None and list(held.time) == [96 * MINUTE, 97 * MINUTE, 98 * MINUTE]
    assert recent.closed_between(80 * MINUTE, 99 * MINUTE) is None
    assert recent.closed_between(101 * MINUTE, 104 * MINUTE) is None  # the newest one may still be forming
    older = asyncio.run(recent.since(70 * MINUTE, 80 * MINUTE, market.fetch, 1.0))
    assert market.fetches[-1] == (70 * MINUTE, 80 * MINUTE) and len(older) == 10


def test_recent_candles_keep_a_bounded_window() -> None:
    market, clock = Market(now_ms=1000 * MINUTE), Clock()
    recent = RecentCandles(keep=20, clock=clock)
    asyncio.run(recent.since(0, 10**15, market.fetch, 1.0))
    held = recent.closed_between(990 * MINUTE, 995 * MINUTE)
    assert held is not None and len(held) == 5
    assert recent.closed_between(900 * MINUTE, 995 * MINUTE) is None  # dropped: only the newest 20 kept


def test_a_fresh_answer_is_shared_and_refetched_once_stale() -> None:
    clock, calls = Clock(), []

    async def fetch() -> str:
        calls.append(clock.now)
        await asyncio.sleep(0.01)
        return f"ticker at {clock.now}"

    fresh: Fresh[str] = Fresh()

    async def many() -> list[str]:
        return await asyncio.gather(*(fresh.get(fetch, 1.0, clock) for _ in range(50)))

    assert set(asyncio.run(many())) == {"ticker at 0.0"} and calls == [0.0]
    clock.now = 2.0
    assert asyncio.run(fresh.get(fetch, 1.0, clock)) == "ticker at 2.0" and calls == [0.0, 2.0]


def test_shared_reads_hand_out_one_state_per_market() -> None:
    shared = SharedReads(keep_candles=10)
    assert shared.ticker("BTC/USDT") is shared.ticker("BTC/USDT")
    assert shared.ticker("BTC/USDT") is not shared.ticker("ETH/USDT")
    assert shared.candles("BTC/USDT", "1m") is shared.candles("BTC/USDT", "1m")
    assert shared.candles("BTC/USDT", "1m") is not shared.candles("BTC/USDT", "5m")

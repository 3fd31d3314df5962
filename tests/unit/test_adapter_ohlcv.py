"""Paginated OHLCV: exactly the stored candles across gaps and page boundaries, and always terminating."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from traiding_adapters.ohlcv import fetch_all_pages

TF = 300_000  # 5m


def stored(times: list[int]) -> list[list[float]]:
    return [[t, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0 + i] for i, t in enumerate(times)]


class BinanceLikePages:
    """Answers like /api/v3/klines: the first `limit` stored candles with startTime <= t <= endTime."""

    def __init__(self, rows: list[list[float]], max_limit: int = 1000) -> None:
        self.rows = rows
        self.max_limit = max_limit
        self.calls: list[tuple[int, int, int]] = []

    async def __call__(self, since: int, until: int, limit: int) -> Sequence[Sequence[float]]:
        self.calls.append((since, until, limit))
        return [r for r in self.rows if since <= r[0] <= until][: min(limit, self.max_limit)]


def with_gaps() -> list[int]:
    times = [i * TF for i in range(100)]
    times = [t for t in times if not (20 * TF <= t < 33 * TF)]  # a 13-candle gap
    times = [t for t in times if t != 50 * TF]  # a single missing candle
    return times + [t * TF for t in range(400, 420)]  # a long gap, then more


async def test_exactly_the_stored_candles_across_gaps_and_page_boundaries() -> None:
    times = with_gaps()
    pages = BinanceLikePages(stored(times))
    candles = await fetch_all_pages(
        pages, since_ms=0, until_ms=10**9, timeframe_ms=TF, limit=7, empty_page_means_end=True
    )
    assert candles.time.tolist() == times
    assert np.all(np.diff(candles.time) > 0)
    assert candles.close.tolist() == [r[4] for r in stored(times)]
    # each call starts right after the previous page's last candle: no overlap, no skipped candle
    assert all(since % TF == 0 for since, _, _ in pages.calls)
    assert len(pages.calls) == -(-len(times) // 7) + 1  # full pages plus the final empty one


async def test_until_is_exclusive_and_since_inclusive() -> None:
    times = [i * TF for i in range(50)]
    pages = BinanceLikePages(stored(times))
    candles = await fetch_all_pages(
        pages, since_ms=10 * TF, until_ms=20 * TF, timeframe_ms=TF, limit=3, empty_page_means_end=True
    )
    assert candles.time.tolist() == times[10:20]


async def test_exchange_capping_the_page_size_still_gets_everything() -> None:
    times = [i * TF for i in range(30)]
    pages = BinanceLikePages(stored(times), max_limit=4)
    candles = await fetch_all_pages(
        pages, since_ms=0, until_ms=30 * TF, timeframe_ms=TF, limit=10, empty_page_means_end=True
    )
    assert candles.time.tolist() == times


async def test_overlapping_pages_are_deduplicated() -> None:
    """An exchange that repeats the last candle of the previous page (inclusive cursors)."""
    times = [i * TF for i in range(20)]
    rows = stored(times)

    async def overlapping(since: int, until: int, limit: int) -> list[list[float]]:
        return [r for r in rows if since - TF <= r[0] <= until][:limit]

    candles = await fetch_all_pages(
        overlapping, since_ms=0, until_ms=20 * TF, timeframe_ms=TF, limit=5, empty_page_means_end=True
    )
    assert candles.time.tolist() == times


async def test_empty_pages_in_a_gap_do_not_end_the_download_on_windowed_exchanges() -> None:
    """Exchanges that answer only [since, since + limit * tf): a wide gap yields empty pages."""
    times = [i * TF for i in range(10)] + [i * TF for i in range(60, 70)]
    rows = stored(times)

    async def windowed(since: int, until: int, limit: int) -> list[list[float]]:
        return [r for r in rows if since <= r[0] < since + limit * TF and r[0] <= until]

    candles = await fetch_all_pages(
        windowed, since_ms=0, until_ms=100 * TF, timeframe_ms=TF, limit=5, empty_page_means_end=False
    )
    assert candles.time.tolist() == times


async def test_an_exchange_ignoring_since_cannot_loop_forever() -> None:
    calls = 0

    async def always_the_same(since: int, until: int, limit: int) -> list[list[float]]:
        nonlocal calls
        calls += 1
        return stored([0, TF])

    candles = await fetch_all_pages(
        always_the_same, since_ms=0, until_ms=50 * TF, timeframe_ms=TF, limit=2, empty_page_means_end=True
    )
    assert candles.time.tolist() == [0, TF]
    assert calls <= 50


async def test_nothing_stored() -> None:
    pages = BinanceLikePages([])
    candles = await fetch_all_pages(
        pages, since_ms=0, until_ms=100 * TF, timeframe_ms=TF, limit=10, empty_page_means_end=True
    )
    assert len(candles) == 0
    assert len(pages.calls) == 1


async def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        await fetch_all_pages(
            BinanceLikePages([]), since_ms=0, until_ms=1, timeframe_ms=0, limit=1, empty_page_means_end=True
        )

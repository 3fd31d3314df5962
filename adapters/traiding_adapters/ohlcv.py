"""Paginated OHLCV download: every stored candle in [since, until), across gaps, without duplicates.

The exchange answers at most `limit` candles per call, starting at the first stored candle at or after
`since`. We move the cursor to one timeframe past the last candle received, so a page boundary never
repeats a candle and a gap (missing candles) is simply jumped over. An empty page means nothing is stored
between the cursor and `until` on exchanges that search forward (Binance); on others it may be a gap as
wide as a page, so the cursor moves on by a page. The cursor only ever moves forward by at least one
timeframe, so the loop ends after at most (until - since) / timeframe calls whatever the exchange answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from traiding.domain.candles import Candles

# (since_ms, until_ms_inclusive, limit) -> raw rows [[time, o, h, l, c, v], ...]
PageFetcher = Callable[[int, int, int], Awaitable[Sequence[Sequence[float | int | None]]]]


async def fetch_all_pages(
    fetch_page: PageFetcher,
    *,
    since_ms: int,
    until_ms: int,
    timeframe_ms: int,
    limit: int,
    empty_page_means_end: bool,
) -> Candles:
    """All candles with open time in [since_ms, until_ms) as `Candles`, ascending and unique."""
    if timeframe_ms <= 0 or limit <= 0:
        raise ValueError("timeframe_ms and limit must be positive")
    rows: dict[int, tuple[float, float, float, float, float]] = {}
    cursor = since_ms
    while cursor < until_ms:
        page = await fetch_page(cursor, until_ms - 1, limit)
        last_time: int | None = None
        for row in page:
            if row[0] is None:
                continue
            open_time = int(row[0])
            if cursor <= open_time < until_ms and open_time not in rows:
                rows[open_time] = tuple(_number(value) for value in row[1:6])  # type: ignore[assignment]
            last_time = open_time if last_time is None else max(last_time, open_time)
        if last_time is None:
            if empty_page_means_end:
                break
            cursor += limit * timeframe_ms
            continue
        cursor = max(cursor + timeframe_ms, last_time + timeframe_ms)
    return candles_from_rows(rows)


def candles_from_rows(rows: dict[int, tuple[float, float, float, float, float]]) -> Candles:
    times = sorted(rows)
    values = np.array([rows[t] for t in times], dtype=np.float64).reshape(len(times), 5)
    return Candles(
        time=np.array(times, dtype=np.int64),
        open=values[:, 0].copy(),
        high=values[:, 1].copy(),
        low=values[:, 2].copy(),
        close=values[:, 3].copy(),
        volume=values[:, 4].copy(),
    )


def _number(value: float | int | None) -> float:
    return float("nan") if value is None else float(value)

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
import numpy.typing as npt

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
    pages: list[npt.NDArray[np.float64]] = []
    cursor = since_ms
    while cursor < until_ms:
        raw = await fetch_page(cursor, until_ms - 1, limit)
        # None (a missing value) becomes NaN; rows are [time, open, high, low, close, volume]
        page = np.array(raw, dtype=np.float64).reshape(-1, 6) if len(raw) else np.empty((0, 6))
        page = page[~np.isnan(page[:, 0])]
        if len(page) == 0:
            if empty_page_means_end:
                break
            cursor += limit * timeframe_ms
            continue
        times = page[:, 0].astype(np.int64)
        pages.append(page[(times >= cursor) & (times < until_ms)])
        cursor = max(cursor + timeframe_ms, int(times.max()) + timeframe_ms)
    return candles_from_pages(pages)


def candles_from_pages(pages: list[npt.NDArray[np.float64]]) -> Candles:
    """One Candles of the pages' rows, ascending, the first copy of any repeated open time kept."""
    rows = np.concatenate(pages) if pages else np.empty((0, 6))
    times = rows[:, 0].astype(np.int64)
    unique_times, first = np.unique(times, return_index=True)
    rows = rows[first]
    return Candles(
        time=unique_times,
        open=rows[:, 1].copy(),
        high=rows[:, 2].copy(),
        low=rows[:, 3].copy(),
        close=rows[:, 4].copy(),
        volume=rows[:, 5].copy(),
    )

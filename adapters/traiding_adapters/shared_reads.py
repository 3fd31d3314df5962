"""Market data shared by every run of the process: one fetch in flight per market, answers at most a moment old.

Runs on the same market poll the same things: its ticker, and the candles that closed since they last looked.
Two hundred runs polling five times a second would spend the one rate budget of the exchange key on the same
answers. So each market (exchange, endpoints, symbol, timeframe) has one `SharedTicker` and one
`RecentCandles` per process:

- a caller gets the last answer if it is younger than `max_age_s`, else it fetches, and callers that arrive
  while that fetch is in flight wait for it instead of fetching too;
- `RecentCandles` keeps the newest candles (the last one may still be forming) and refreshes from its newest
  candle on, so every candle is fetched once, however many runs read it; a caller asking for older candles
  than it holds fetches those (and they join it).

Market data is public: runs with different API keys on the same exchange and endpoints share it; each fetch is
charged to the budget of the run that makes it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from traiding.domain.candles import Candles, candles_between, merge_candles
from traiding_adapters.exchange import Ticker

T = TypeVar("T")
Clock = Callable[[], float]
RangeFetch = Callable[[int, int], Awaitable[Candles]]
KEPT_MARKETS = 256  # markets with shared state per exchange endpoint; the least recently used go first


@dataclass
class Fresh(Generic[T]):
    """The last answer of one fetch and when that fetch started."""

    value: T | None = None
    fetched_at: float = -float("inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def young(self, max_age_s: float, clock: Clock) -> bool:
        return self.value is not None and clock() - self.fetched_at < max_age_s

    async def get(self, fetch: Callable[[], Awaitable[T]], max_age_s: float, clock: Clock) -> T:
        if self.value is not None and self.young(max_age_s, clock):
            return self.value
        async with self.lock:  # one fetch in flight; who waited for it takes its answer
            if self.value is not None and self.young(max_age_s, clock):
                return self.value
            started = clock()
            value = await fetch()
            self.value, self.fetched_at = value, started
            return value


class RecentCandles:
    """The newest candles of one market (see module doc)."""

    def __init__(self, keep: int, clock: Clock = time.monotonic) -> None:
        self.keep = keep
        self.clock = clock
        self._state: Fresh[Candles] = Fresh()

    def closed_between(self, since_ms: int, until_ms: int) -> Candles | None:
        """The candles in [since_ms, until_ms) if all of them are held and closed (a newer one exists), else None."""
        candles = self._state.value
        if candles is None or len(candles) == 0:
            return None
        if since_ms < int(candles.time[0]) or until_ms > int(candles.time[-1]):
            return None
        return candles_between(candles, since_ms, until_ms)

    async def since(self, since_ms: int, until_ms: int, fetch: RangeFetch, max_age_s: float) -> Candles:
        """The candles in [since_ms, until_ms) as of at most `max_age_s` ago; `until_ms` in the future means up to
        the present, the last candle possibly still forming."""
        state = self._state
        closed = self.closed_between(since_ms, until_ms)
        if closed is not None:
            return closed
        if self._holds(since_ms) and state.young(max_age_s, self.clock):
            return self._slice(since_ms, until_ms)
        async with state.lock:
            if not (self._holds(since_ms) and state.young(max_age_s, self.clock)):
                started = self.clock()
                held = state.value
                if held is None or len(held) == 0 or since_ms < int(held.time[0]):
                    fetched = await fetch(since_ms, until_ms)
                else:  # from the newest held candle on: it may have been forming, and each candle comes once
                    newest = int(held.time[-1])
                    fetched = await fetch(newest, max(until_ms, newest + 1))
                merged = fetched if held is None else merge_candles(held, fetched)
                state.value = merged.slice(max(0, len(merged) - self.keep), len(merged))
                state.fetched_at = started
        return self._slice(since_ms, until_ms)

    def _holds(self, since_ms: int) -> bool:
        candles = self._state.value
        return candles is not None and len(candles) > 0 and since_ms >= int(candles.time[0])

    def _slice(self, since_ms: int, until_ms: int) -> Candles:
        candles = self._state.value
        assert candles is not None  # nosec B101  # narrows a type: callers check _covers first
        return candles_between(candles, since_ms, until_ms)


class SharedReads:
    """The shared tickers and recent candles of one exchange endpoint, by symbol (and timeframe)."""

    def __init__(self, *, keep_candles: int, clock: Clock = time.monotonic) -> None:
        self.keep_candles = keep_candles
        self.clock = clock
        self._tickers: OrderedDict[str, Fresh[Ticker]] = OrderedDict()
        self._candles: OrderedDict[tuple[str, str], RecentCandles] = OrderedDict()

    def ticker(self, symbol: str) -> Fresh[Ticker]:
        return _lru(self._tickers, symbol, Fresh)

    def candles(self, symbol: str, timeframe: str) -> RecentCandles:
        return _lru(self._candles, (symbol, timeframe), lambda: RecentCandles(self.keep_candles, self.clock))


K = TypeVar("K")
V = TypeVar("V")


def _lru(entries: OrderedDict[K, V], key: K, make: Callable[[], V]) -> V:
    entry = entries.get(key)
    if entry is None:
        entry = entries[key] = make()
        while len(entries) > KEPT_MARKETS:
            entries.popitem(last=False)
    entries.move_to_end(key)
    return entry

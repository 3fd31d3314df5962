"""The history window a run checks and backtests, and `HistoryStore`: candles fetched once, shared by every run.

Runs on the same market (exchange, symbol, timeframe) ask for nearly the same lookback, so a process keeps one
history per market: in memory (the most recently used markets), backed by the on-disk `CandleCache`, and
completed from the exchange only where neither covers the window. One fetch is in flight per market: a run
that needs the same candles waits for it, then fetches at most what is still missing (the candles that closed
meanwhile). Parsing and writing the cache files is CPU work and runs through the `Offload`; writes are
coalesced per market (one in flight, the newest state wins) and do not hold up the run that fetched.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from traiding.domain.candles import (
    CandleCache,
    Candles,
    Interval,
    candles_between,
    empty_candles,
    merge_candles,
    uncovered,
    union_intervals,
)
from traiding.domain.timeframes import duration_ms, timeframe_ms
from traiding.pipeline import compute
from traiding.pipeline.compute import MarketKey
from traiding.pipeline.offload import INLINE, Offload
from traiding.resource import TradingRunSpec
from traiding_adapters.exchange import Exchange

log = logging.getLogger(__name__)
KEPT_MARKETS = 8  # histories held in memory; older ones are read from disk again when needed
KEPT_CANDLES = 250_000  # per market (12 MB): beyond it the oldest candles leave memory (they stay on disk)


SIMULATOR_SUFFIX = "-simulator"


def cache_key(spec: TradingRunSpec) -> str:
    """Simulated markets never share a cache entry with the real exchange of the same id."""
    return f"{spec.exchange.id}{SIMULATOR_SUFFIX}" if spec.exchange.simulator else spec.exchange.id


async def market_now_ms(exchange: Exchange, symbol: str) -> int:
    """The market's current time: the ticker's timestamp (a replayed market runs on its own clock)."""
    ticker = await exchange.fetch_ticker(symbol)
    if ticker.timestamp is not None:
        return int(ticker.timestamp)
    return await exchange.server_time()


def window_at(spec: TradingRunSpec, now_ms: int) -> dict[str, int]:
    """[start, end) of the lookback at market time `now_ms`, ending at the last closed candle."""
    tf = timeframe_ms(spec.market.timeframe)
    end = now_ms // tf * tf  # the open time of the forming candle: everything before it has closed
    return {"start_ms": end - duration_ms(spec.gates.dataCheck.lookback), "end_ms": end, "now_ms": now_ms}


def history_window(checkpoint: dict[str, Any]) -> tuple[int, int]:
    history = checkpoint.get("history")
    if not history:
        raise RuntimeError("no history window: the DataCheck phase records it before the backtest runs")
    return int(history["start_ms"]), int(history["end_ms"])


@dataclass
class _Market:
    """One market's candles in memory and the ranges they cover (fetched, read from disk)."""

    candles: Candles = field(default_factory=empty_candles)
    covered: list[Interval] = field(default_factory=list)
    unsaved: list[Interval] = field(default_factory=list)  # fetched ranges not on disk yet
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one fetch in flight
    saving: asyncio.Task[None] | None = None


class HistoryStore:
    """Candle history for the runs of one process (see module doc)."""

    def __init__(self, cache: CandleCache, offload: Offload = INLINE) -> None:
        self.cache = cache
        self.offload = offload
        self._markets: OrderedDict[MarketKey, _Market] = OrderedDict()

    async def window(self, exchange: Exchange, market: MarketKey, start_ms: int, end_ms: int) -> Candles:
        """The closed candles opening in `[start_ms, end_ms)`: from memory, the disk, the exchange, in that order."""
        held = self._market(market)
        async with held.lock:
            if not held.covered:
                await self._read_disk(held, market)
            # A replay aligned to the wall clock shows the same candles under other dates on another day, and
            # other data under the same dates: what is held is used only while the replay still shows the
            # window's first and last candle as they were stored.
            replay = market.cache_key.endswith(SIMULATOR_SUFFIX) and bool(held.covered)
            if replay and not await _replay_shows(exchange, market, candles_between(held.candles, start_ms, end_ms)):
                await self._forget(held, market)
            gaps = uncovered(held.covered, start_ms, end_ms, timeframe_ms(market.timeframe))
            for gap_start, gap_end in gaps:
                fetched = await exchange.fetch_ohlcv(market.symbol, market.timeframe, gap_start, gap_end)
                held.candles = merge_candles(held.candles, candles_between(fetched, gap_start, gap_end))
            if gaps:
                held.covered = union_intervals([*held.covered, *gaps])
                held.unsaved = union_intervals([*held.unsaved, *gaps])
                self._trim(held)
                self._save_soon(held, market)
            return candles_between(held.candles, start_ms, end_ms)

    async def flush(self) -> None:
        """Wait until every fetched range is on disk (a local run's report reads the cache afterwards)."""
        for market in list(self._markets.values()):
            while market.saving is not None:
                await asyncio.shield(market.saving)

    async def _forget(self, held: _Market, market: MarketKey) -> None:
        while held.saving is not None:
            await asyncio.shield(held.saving)
        held.candles, held.covered, held.unsaved = empty_candles(), [], []
        self.cache.drop(market.cache_key, market.symbol, market.timeframe)

    def _market(self, key: MarketKey) -> _Market:
        """The market's entry, the most recently used now; beyond `KEPT_MARKETS`, idle ones are dropped."""
        market = self._markets.get(key)
        if market is None:
            market = self._markets[key] = _Market()
            for old_key in list(self._markets)[:-KEPT_MARKETS]:
                old = self._markets[old_key]
                if old.saving is None and not old.lock.locked():
                    del self._markets[old_key]  # read from disk again when a run needs it
        self._markets.move_to_end(key)
        return market

    async def _read_disk(self, held: _Market, market: MarketKey) -> None:
        loaded = await self.offload.run(compute.load_cached, str(self.cache.root), market)
        if loaded is not None:
            held.candles, held.covered = loaded
            self._trim(held)

    def _trim(self, market: _Market) -> None:
        if len(market.candles) <= KEPT_CANDLES:
            return
        first = int(market.candles.time[-KEPT_CANDLES])
        market.candles = candles_between(market.candles, first, int(market.candles.time[-1]) + 1)
        market.covered = [(max(start, first), end) for start, end in market.covered if end > first]
        market.unsaved = [(max(start, first), end) for start, end in market.unsaved if end > first]

    def _save_soon(self, held: _Market, market: MarketKey) -> None:
        if held.saving is None:
            held.saving = asyncio.create_task(self._save(held, market), name=f"save candles {market}")

    async def _save(self, held: _Market, market: MarketKey) -> None:
        """Write the unsaved ranges; ranges fetched while writing are written by the next round."""
        try:
            while held.unsaved:
                ranges, held.unsaved = held.unsaved, []
                fetched = [(candles_between(held.candles, start, end), (start, end)) for start, end in ranges]
                await self.offload.run(compute.store_cached, str(self.cache.root), market, fetched)
        except Exception as error:  # a cache that cannot be written costs a fetch after a restart, no more
            log.warning("could not write candles of %s to the cache %s: %s", market, self.cache.root, error)
        finally:
            held.saving = None


async def _replay_shows(exchange: Exchange, market: MarketKey, held: Candles) -> bool:
    if len(held) == 0:
        return False
    tf = timeframe_ms(market.timeframe)
    for index in (0, len(held) - 1):
        t = int(held.time[index])
        live = await exchange.fetch_ohlcv(market.symbol, market.timeframe, t, t + tf)
        if len(live) != 1 or int(live.time[0]) != t:
            return False
        for column in ("open", "high", "low", "close", "volume"):
            if float(getattr(live, column)[0]) != float(getattr(held, column)[index]):
                return False
    return True

"""The history window a run checks and backtests, fetched once and cached on disk."""

from __future__ import annotations

from typing import Any

from traiding.domain.candles import Candles
from traiding.domain.timeframes import duration_ms
from traiding.pipeline.context import RunContext
from traiding.resource import TradingRunSpec


def cache_key(spec: TradingRunSpec) -> str:
    """Simulated markets never share a cache entry with the real exchange of the same id."""
    return f"{spec.exchange.id}-simulator" if spec.exchange.simulator else spec.exchange.id


async def market_now_ms(ctx: RunContext) -> int:
    """The market's current time: the ticker's timestamp (a replayed market runs on its own clock)."""
    ticker = await ctx.exchange.fetch_ticker(ctx.spec.market.symbols[0])
    if ticker.timestamp is not None:
        return int(ticker.timestamp)
    return await ctx.exchange.server_time()


async def decide_window(ctx: RunContext, checkpoint: dict[str, Any]) -> tuple[int, int]:
    """[start, end) of the lookback, ending at the last closed candle; fixed once so later phases agree."""
    now = await market_now_ms(ctx)
    tf = ctx.timeframe_ms
    end = now // tf * tf  # the open time of the forming candle: everything before it has closed
    start = end - duration_ms(ctx.spec.gates.dataCheck.lookback)
    checkpoint["history"] = {"start_ms": start, "end_ms": end, "now_ms": now}
    return start, end


def history_window(ctx: RunContext, checkpoint: dict[str, Any]) -> tuple[int, int]:
    history = checkpoint.get("history")
    if not history:
        raise RuntimeError("no history window: the DataCheck phase records it before the backtest runs")
    return int(history["start_ms"]), int(history["end_ms"])


async def load_history(ctx: RunContext, symbol: str, start_ms: int, end_ms: int) -> Candles:
    key = cache_key(ctx.spec)
    cached = ctx.cache.get(key, symbol, ctx.timeframe, start_ms, end_ms)
    if ctx.spec.exchange.simulator is not None:
        # A replay aligned to the wall clock shows the same candles under other dates on another day, and other
        # data under the same dates: a simulator's entry holds the one window fetched last, and is used only while
        # the replay still shows its first and last candle as they were cached.
        if cached is not None and not await _replay_shows(ctx, symbol, cached):
            cached = None
        if cached is None:
            ctx.cache.drop(key, symbol, ctx.timeframe)
    if cached is not None:
        return cached
    candles = await ctx.exchange.fetch_ohlcv(symbol, ctx.timeframe, start_ms, end_ms)
    ctx.cache.put(key, symbol, ctx.timeframe, candles, start_ms=start_ms, end_ms=end_ms)
    return candles


async def _replay_shows(ctx: RunContext, symbol: str, cached: Candles) -> bool:
    if len(cached) == 0:
        return False
    for index in (0, len(cached) - 1):
        t = int(cached.time[index])
        live = await ctx.exchange.fetch_ohlcv(symbol, ctx.timeframe, t, t + ctx.timeframe_ms)
        if len(live) != 1 or int(live.time[0]) != t:
            return False
        for column in ("open", "high", "low", "close", "volume"):
            if float(getattr(live, column)[0]) != float(getattr(cached, column)[index]):
                return False
    return True

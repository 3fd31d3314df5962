"""The DataCheck phase: fetch the lookback for every symbol (paginated, cached, shared) and check its quality."""

from __future__ import annotations

from typing import Any

from traiding.domain.statemachine import Phase
from traiding.domain.strategies import get_strategy
from traiding.pipeline import compute
from traiding.pipeline.context import PhaseResult, RunContext, failed, passed
from traiding.pipeline.history import cache_key, market_now_ms, window_at


async def run_data_check(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult:
    # A manifest applied to the cluster passed the schema, not the strategy registry: check it before any fetch.
    get_strategy(ctx.spec.strategy.name, ctx.spec.strategy.params)
    # The window is fixed here, once, so the backtest checks exactly these candles.
    now_ms = await market_now_ms(ctx.exchange, ctx.spec.market.symbols[0])
    checkpoint["history"] = window = window_at(ctx.spec, now_ms)
    results: dict[str, Any] = {}
    failures: list[str] = []
    for symbol in ctx.spec.market.symbols:
        market = compute.MarketKey(cache_key(ctx.spec), symbol, ctx.timeframe)
        candles = await ctx.history.window(ctx.exchange, market, window["start_ms"], window["end_ms"])
        quality = await ctx.offload.run(compute.symbol_quality, ctx.spec, symbol, candles, window)
        results[symbol] = quality.results
        ctx.events.emit(
            "DataCheck",
            "DataQuality",
            quality.message,
            level="warning" if quality.problems else "info",
            metrics=quality.results,
        )
        failures.extend(quality.problems)
    if failures:
        return failed(Phase.DATA_CHECK, "DataQualityFailed", "; ".join(failures), results)
    total = sum(r["candles"] for r in results.values())
    return passed(Phase.DATA_CHECK, "DataChecked", f"{total} candles checked for {len(results)} symbol(s)", results)

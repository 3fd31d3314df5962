"""The Backtest phase: the strategy over the checked history, with the run's costs, against its gates."""

from __future__ import annotations

from typing import Any

from traiding.domain.statemachine import Phase
from traiding.pipeline import compute
from traiding.pipeline.context import PhaseResult, RunContext, failed, passed
from traiding.pipeline.history import cache_key, history_window


async def run_backtest_phase(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult:
    results: dict[str, Any] = {}
    failures: list[str] = []
    start_ms, end_ms = history_window(checkpoint)
    for symbol in ctx.spec.market.symbols:
        market = compute.MarketKey(cache_key(ctx.spec), symbol, ctx.timeframe)
        candles = await ctx.history.window(ctx.exchange, market, start_ms, end_ms)
        tested = await ctx.offload.run(compute.symbol_backtest, ctx.spec, symbol, candles)
        if tested.shortfall is not None:
            return failed(Phase.BACKTEST, "WarmupLongerThanData", f"{symbol}: {tested.shortfall}", results)
        results[symbol] = tested.results
        ctx.events.emit("Backtest", "BacktestResult", tested.message, metrics=tested.values)
        failures.extend(tested.failures)
    if failures:
        return failed(Phase.BACKTEST, "BacktestGateFailed", "; ".join(failures), results)
    return passed(Phase.BACKTEST, "BacktestPassed", f"all backtest gates passed for {len(results)} symbol(s)", results)

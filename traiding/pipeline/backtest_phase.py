"""The Backtest phase: the strategy over the checked history, with the run's costs, against its gates."""

from __future__ import annotations

from typing import Any

from traiding.domain.backtest import BacktestConfig, BacktestResult, run_backtest
from traiding.domain.candles import Candles, normalize
from traiding.domain.gates import GateThreshold, evaluate_gates
from traiding.domain.statemachine import Phase
from traiding.domain.strategies import get_strategy
from traiding.pipeline.context import PhaseResult, RunContext, failed, passed
from traiding.pipeline.history import history_window, load_history
from traiding.resource import TradingRunSpec


def backtest_config(spec: TradingRunSpec) -> BacktestConfig:
    return BacktestConfig(
        initial_capital=spec.capital.initial,
        fee_rate=spec.costs.feeRate,
        slippage=spec.costs.slippagePct / 100,
        position_fraction=spec.risk.maxPositionFraction,
        stop_loss_pct=spec.risk.stopLossPct,
    )


def gate_thresholds(spec: TradingRunSpec) -> list[GateThreshold]:
    """The spec's backtest gates as generic thresholds; an empty gate is no gate."""
    gate = spec.gates.backtest
    candidates: list[tuple[str, str, str, float | None]] = [
        ("minTrades", "trades", ">=", float(gate.minTrades)),
        ("minSharpe", "sharpe", ">=", gate.minSharpe),
        ("maxDrawdownPct", "max_drawdown_pct", "<=", gate.maxDrawdownPct),
        ("minTotalReturnPct", "total_return_pct", ">=", gate.minTotalReturnPct),
        ("minWinRatePct", "win_rate_pct", ">=", gate.minWinRatePct),
        ("minProfitFactor", "profit_factor", ">=", gate.minProfitFactor),
    ]
    return [
        GateThreshold(name=name, metric=metric, comparison=op, threshold=value)
        for name, metric, op, value in candidates
        if value is not None
    ]


def backtest_symbol(spec: TradingRunSpec, candles: Candles) -> tuple[Candles, BacktestResult]:
    """The backtest over `candles` as checked (sorted, one row per time); returns those and the result."""
    strategy = get_strategy(spec.strategy.name, spec.strategy.params)
    clean = normalize(candles)
    signals = strategy.signals(clean)
    return clean, run_backtest(clean, signals.entries, signals.exits, backtest_config(spec))


def warmup_shortfall(spec: TradingRunSpec, candles: int) -> str | None:
    """Why the strategy cannot signal on `candles` candles (its warm-up needs more), or None."""
    strategy = get_strategy(spec.strategy.name, spec.strategy.params)
    if candles > strategy.warmup:
        return None
    return (
        f"the strategy's warm-up needs {strategy.warmup} candles before its first signal ({strategy!r}), "
        f"but the lookback ({spec.gates.dataCheck.lookback} of {spec.market.timeframe}) holds {candles}: "
        "lengthen gates.dataCheck.lookback"
    )


async def run_backtest_phase(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult:
    thresholds = gate_thresholds(ctx.spec)
    results: dict[str, Any] = {}
    failures: list[str] = []
    start_ms, end_ms = history_window(ctx, checkpoint)
    for symbol in ctx.spec.market.symbols:
        candles = await load_history(ctx, symbol, start_ms, end_ms)
        shortfall = warmup_shortfall(ctx.spec, len(candles))
        if shortfall is not None:
            return failed(Phase.BACKTEST, "WarmupLongerThanData", f"{symbol}: {shortfall}", results)
        _, result = backtest_symbol(ctx.spec, candles)
        values = result.metrics.gate_values()
        win_rate = values.get("win_rate")
        values["win_rate_pct"] = None if win_rate is None else win_rate * 100
        report = evaluate_gates(values, thresholds, result.metrics.notes())
        results[symbol] = {
            "metrics": {k: v for k, v in values.items() if v is not None},
            "gates": [r.model_dump(mode="json") for r in report.results],
        }
        if result.metrics.annualised_note:
            results[symbol]["annualisedNote"] = result.metrics.annualised_note
        ctx.events.emit(
            "Backtest",
            "BacktestResult",
            f"{symbol}: {result.metrics.trades} trades, return {result.metrics.total_return_pct:.2f}%, "
            f"max drawdown {result.metrics.max_drawdown_pct:.2f}%",
            metrics=values,
        )
        failures.extend(f"{symbol}: {r.message}" for r in report.results if not r.passed)
    if failures:
        return failed(Phase.BACKTEST, "BacktestGateFailed", "; ".join(failures), results)
    return passed(Phase.BACKTEST, "BacktestPassed", f"all backtest gates passed for {len(results)} symbol(s)", results)

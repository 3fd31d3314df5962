"""The phases' CPU-heavy work as plain functions of picklable arguments: what a worker process computes.

DataCheck's quality checks, Backtest's backtests, Reporting's session summary and the candle cache's file
work (parsing, merging, writing) run here; the phases call them through the run's `Offload` (see offload.py),
which in the operator is a process pool. So this module imports the domain and the resource model only,
never the exchange layer: a worker process starts without ccxt, and what crosses the process boundary is
small (candles as numpy arrays, the spec, plain dicts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from traiding.domain.backtest import BacktestConfig, BacktestResult, run_backtest
from traiding.domain.candles import CandleCache, Candles, Interval, normalize
from traiding.domain.gates import GateThreshold, evaluate_gates
from traiding.domain.metrics import compute_metrics, market_change_pct
from traiding.domain.quality import QualityThresholds, check_quality, evaluate
from traiding.domain.strategies import get_strategy
from traiding.domain.timeframes import duration_ms, format_duration, timeframe_ms
from traiding.resource import Summary, TradingRunSpec

# ----------------------------------------------------------------------------------------------- candle cache


@dataclass(frozen=True)
class MarketKey:
    """One market's candles: the cache's exchange key (see history.cache_key), the symbol and the timeframe."""

    cache_key: str
    symbol: str
    timeframe: str


def load_cached(root: str, market: MarketKey) -> tuple[Candles, list[Interval]] | None:
    """Everything the on-disk cache holds for the market, with the ranges it covers (None: nothing)."""
    cache = CandleCache(Path(root))
    candles = cache.load(market.cache_key, market.symbol, market.timeframe)
    if candles is None:
        return None
    return candles, cache.coverage(market.cache_key, market.symbol, market.timeframe)


def store_cached(root: str, market: MarketKey, fetched: list[tuple[Candles, Interval]]) -> None:
    """Add candles to the on-disk cache, each with the range `[start, end)` they were fetched for."""
    cache = CandleCache(Path(root))
    for candles, (start_ms, end_ms) in fetched:
        cache.put(market.cache_key, market.symbol, market.timeframe, candles, start_ms=start_ms, end_ms=end_ms)


# ----------------------------------------------------------------------------------------------- DataCheck


@dataclass(frozen=True)
class SymbolQuality:
    results: dict[str, Any]  # the phase record's entry for the symbol
    problems: list[str]  # why it fails the gate (empty: it passes)
    message: str  # the DataQuality event's


def thresholds_of(spec: TradingRunSpec) -> QualityThresholds:
    gate = spec.gates.dataCheck
    staleness = duration_ms(gate.maxStaleness) if gate.maxStaleness else 3 * timeframe_ms(spec.market.timeframe)
    return QualityThresholds(
        max_gap_ratio=gate.maxGapRatio, max_staleness_ms=staleness, max_outlier_ratio=gate.maxOutlierRatio
    )


def symbol_quality(spec: TradingRunSpec, symbol: str, candles: Candles, window: dict[str, int]) -> SymbolQuality:
    """The data check of one symbol's lookback (`window`: its start_ms, end_ms and the now_ms it was fixed at)."""
    thresholds = thresholds_of(spec)
    report = check_quality(
        candles,
        timeframe_ms(spec.market.timeframe),
        now_ms=window["now_ms"],
        max_staleness_ms=thresholds.max_staleness_ms,
        start_ms=window["start_ms"],
        end_ms=window["end_ms"],
    )
    results = {
        "candles": report.candles,
        "expected": report.expected,
        "missing": report.missing,
        "gapRatio": report.gap_ratio,
        "gaps": len(report.gaps),
        "longestGap": format_duration(report.longest_gap_ms) if report.longest_gap_ms else "0s",
        "duplicates": report.duplicates,
        "outOfOrder": report.out_of_order,
        "outliers": report.outliers,
        "stalenessMs": report.staleness_ms,
    }
    odd_rows = "".join(f"; {d}" for d in (report.duplicates_detail, report.out_of_order_detail) if d)
    message = f"{symbol}: {report.candles} candles, {len(report.gaps)} gaps ({report.gap_ratio:.2%} missing){odd_rows}"
    problems = [f"{symbol}: {p.message}" for p in evaluate(report, thresholds)]
    return SymbolQuality(results, problems, message)


# ----------------------------------------------------------------------------------------------- Backtest


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


@dataclass(frozen=True)
class SymbolBacktest:
    shortfall: str | None  # the warm-up is longer than the data: nothing else was computed
    results: dict[str, Any] = field(default_factory=dict)  # the phase record's entry for the symbol
    failures: list[str] = field(default_factory=list)  # the gates it failed
    message: str = ""  # the BacktestResult event's
    values: dict[str, float | None] = field(default_factory=dict)  # every metric, for the event


def symbol_backtest(spec: TradingRunSpec, symbol: str, candles: Candles) -> SymbolBacktest:
    """The backtest of one symbol's lookback against the run's gates."""
    shortfall = warmup_shortfall(spec, len(candles))
    if shortfall is not None:
        return SymbolBacktest(shortfall)
    _, result = backtest_symbol(spec, candles)
    values = result.metrics.gate_values()
    win_rate = values.get("win_rate")
    values["win_rate_pct"] = None if win_rate is None else win_rate * 100
    report = evaluate_gates(values, gate_thresholds(spec), result.metrics.notes())
    results: dict[str, Any] = {
        "metrics": {k: v for k, v in values.items() if v is not None},
        "gates": [r.model_dump(mode="json") for r in report.results],
    }
    if result.metrics.annualised_note:
        results["annualisedNote"] = result.metrics.annualised_note
    message = (
        f"{symbol}: {result.metrics.trades} trades, return {result.metrics.total_return_pct:.2f}%, "
        f"max drawdown {result.metrics.max_drawdown_pct:.2f}%"
    )
    failures = [f"{symbol}: {r.message}" for r in report.results if not r.passed]
    return SymbolBacktest(None, results, failures, message, values)


# ----------------------------------------------------------------------------------------------- Reporting


@dataclass(frozen=True)
class _SessionTrades:
    """The session's closed trades in the columns `compute_metrics` reads."""

    entry_index: npt.NDArray[np.int64]
    exit_index: npt.NDArray[np.int64]
    pnl: npt.NDArray[np.float64]
    return_pct: npt.NDArray[np.float64]
    fees: npt.NDArray[np.float64]


def session_market_change_pct(session: dict[str, Any]) -> float | None:
    """Buy and hold over the session, averaged over its symbols: each one's last close over its first."""
    last = session.get("last_prices", {})
    first = session.get("first_prices")
    if first is None:  # a session checkpointed before the price series left the checkpoint
        first = {symbol: series[0][1] for symbol, series in session.get("prices", {}).items() if series}
    changes = [
        change
        for symbol, price in first.items()
        if symbol in last
        and (change := market_change_pct(np.array([price, last[symbol]], dtype=np.float64))) is not None
    ]
    return float(np.mean(changes)) if changes else None


def session_summary(session: dict[str, Any]) -> Summary:
    if "started_ms" not in session:
        return Summary()
    points = np.asarray(session["equity"], dtype=np.float64).reshape(-1, 2)
    trades = session.get("trades", [])
    pnl = np.array([t["pnl"] for t in trades], dtype=np.float64)
    cost = np.array([t["entry_price"] * t["amount"] for t in trades], dtype=np.float64)
    zeros = np.zeros(len(trades), dtype=np.int64)
    columns = _SessionTrades(
        zeros, zeros, pnl, np.divide(pnl, cost, out=np.zeros_like(pnl), where=cost > 0) * 100, np.zeros(len(trades))
    )
    initial = float(session["initial_equity"])
    span_ms = int(session["ends_ms"]) - int(session["started_ms"])
    metrics = compute_metrics(points[:, 0].astype(np.int64), points[:, 1], columns, initial, span_ms=span_ms)
    final = float(points[-1, 1])
    return Summary(
        initialEquity=initial,
        finalEquity=final,
        pnl=final - initial,
        roiPct=(final / initial - 1) * 100 if initial > 0 else None,
        trades=int(session.get("closed_trades", len(trades))),
        wins=int(session.get("wins", 0)),
        losses=int(session.get("losses", 0)),
        maxDrawdownPct=metrics.max_drawdown_pct,
        sharpe=metrics.sharpe,
        sharpeNote=metrics.annualised_note,
        marketChangePct=session_market_change_pct(session),
    )

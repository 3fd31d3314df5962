"""The DataCheck phase: fetch the lookback for every symbol (paginated, cached) and check its quality."""

from __future__ import annotations

from typing import Any

from traiding.domain.quality import QualityThresholds, check_quality, evaluate
from traiding.domain.statemachine import Phase
from traiding.domain.strategies import get_strategy
from traiding.domain.timeframes import duration_ms, format_duration
from traiding.pipeline.context import PhaseResult, RunContext, failed, passed
from traiding.pipeline.history import decide_window, load_history


def thresholds_of(ctx: RunContext) -> QualityThresholds:
    gate = ctx.spec.gates.dataCheck
    staleness = duration_ms(gate.maxStaleness) if gate.maxStaleness else 3 * ctx.timeframe_ms
    return QualityThresholds(
        max_gap_ratio=gate.maxGapRatio, max_staleness_ms=staleness, max_outlier_ratio=gate.maxOutlierRatio
    )


async def run_data_check(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult:
    # A manifest applied to the cluster passed the schema, not the strategy registry: check it before any fetch.
    get_strategy(ctx.spec.strategy.name, ctx.spec.strategy.params)
    start_ms, end_ms = await decide_window(ctx, checkpoint)
    now_ms = int(checkpoint["history"]["now_ms"])
    thresholds = thresholds_of(ctx)
    results: dict[str, Any] = {}
    failures: list[str] = []
    for symbol in ctx.spec.market.symbols:
        candles = await load_history(ctx, symbol, start_ms, end_ms)
        report = check_quality(
            candles,
            ctx.timeframe_ms,
            now_ms=now_ms,
            max_staleness_ms=thresholds.max_staleness_ms,
            start_ms=start_ms,
            end_ms=end_ms,
        )
        problems = evaluate(report, thresholds)
        results[symbol] = {
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
        ctx.events.emit(
            "DataCheck",
            "DataQuality",
            f"{symbol}: {report.candles} candles, {len(report.gaps)} gaps ({report.gap_ratio:.2%} missing){odd_rows}",
            level="warning" if problems else "info",
            metrics=results[symbol],
        )
        failures.extend(f"{symbol}: {p.message}" for p in problems)
    if failures:
        return failed(Phase.DATA_CHECK, "DataQualityFailed", "; ".join(failures), results)
    total = sum(r["candles"] for r in results.values())
    return passed(Phase.DATA_CHECK, "DataChecked", f"{total} candles checked for {len(results)} symbol(s)", results)

"""The Reporting phase: the session's summary (equity, PnL, ROI, trades, drawdown, Sharpe) for the status."""

from __future__ import annotations

from typing import Any

from traiding.domain.statemachine import Phase
from traiding.pipeline import compute
from traiding.pipeline.context import PhaseResult, RunContext, passed


async def run_reporting(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult:
    summary = await ctx.offload.run(compute.session_summary, checkpoint.get("session", {}))
    data = summary.model_dump(exclude_none=True)
    ctx.events.emit(
        "Reporting",
        "Summary",
        f"equity {summary.finalEquity or 0:.2f}, PnL {summary.pnl or 0:+.2f} ({summary.roiPct or 0:+.2f}%), "
        f"{summary.trades or 0} trades",
        metrics=data,
    )
    return passed(Phase.REPORTING, "Reported", "run finished; summary recorded", {"summary": data})

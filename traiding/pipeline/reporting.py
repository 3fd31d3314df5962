"""The Reporting phase: the session's summary (equity, PnL, ROI, trades, drawdown, Sharpe) for the status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from traiding.domain.metrics import compute_metrics, market_change_pct
from traiding.domain.statemachine import Phase
from traiding.pipeline.context import PhaseResult, RunContext, passed
from traiding.resource import Summary


@dataclass(frozen=True)
class _SessionTrades:
    """The session's closed trades in the columns `compute_metrics` reads."""

    entry_index: npt.NDArray[np.int64]
    exit_index: npt.NDArray[np.int64]
    pnl: npt.NDArray[np.float64]
    return_pct: npt.NDArray[np.float64]
    fees: npt.NDArray[np.float64]


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
    changes = [
        change
        for series in session.get("prices", {}).values()
        if (change := market_change_pct(np.asarray(series, dtype=np.float64).reshape(-1, 2)[:, 1])) is not None
    ]
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
        marketChangePct=float(np.mean(changes)) if changes else None,
    )


async def run_reporting(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult:
    summary = session_summary(checkpoint.get("session", {}))
    data = summary.model_dump(exclude_none=True)
    ctx.events.emit(
        "Reporting",
        "Summary",
        f"equity {summary.finalEquity or 0:.2f}, PnL {summary.pnl or 0:+.2f} ({summary.roiPct or 0:+.2f}%), "
        f"{summary.trades or 0} trades",
        metrics=data,
    )
    return passed(Phase.REPORTING, "Reported", "run finished; summary recorded", {"summary": data})

"""`summary.json` and `report.html` of a local run, from its final status and its cached history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from traiding.domain.candles import CandleCache
from traiding.pipeline.backtest_phase import backtest_symbol
from traiding.pipeline.events import json_safe
from traiding.pipeline.history import cache_key
from traiding.pipeline.report_html import ChartSeries, TradeMark, render_report
from traiding.resource import TradingRun, TradingRunStatus


def summary_document(run: TradingRun, status: TradingRunStatus) -> dict[str, Any]:
    summary = status.summary.model_dump(exclude_none=True) if status.summary else {}
    document: dict[str, Any] = json_safe(
        {
            "run": run.metadata.name,
            "mode": run.spec.mode.value,
            "phase": status.phase,
            "reason": status.reason,
            "message": status.message,
            "equity": summary.get("finalEquity"),
            "pnl": summary.get("pnl"),
            "roi_pct": summary.get("roiPct"),
            "trades": summary.get("trades"),
            "wins": summary.get("wins"),
            "losses": summary.get("losses"),
            "max_drawdown_pct": summary.get("maxDrawdownPct"),
            "sharpe": summary.get("sharpe"),
            "phases": {name: rec.model_dump(mode="json", exclude_none=True) for name, rec in status.phases.items()},
        }
    )
    return document


def session_sections(status: TradingRunStatus) -> list[ChartSeries]:
    session = status.checkpoint.get("session", {})
    equity = np.asarray(session.get("equity", []), dtype=np.float64).reshape(-1, 2)
    sections = []
    for symbol, points in session.get("prices", {}).items():
        prices = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(prices) == 0:
            continue
        times = prices[:, 0].astype(np.int64)
        marks: list[TradeMark] = []
        for trade in session.get("trades", []):
            if trade["symbol"] == symbol:
                marks.append(TradeMark(int(trade["entry_time"]), float(trade["entry_price"]), "buy"))
                marks.append(TradeMark(int(trade["exit_time"]), float(trade["exit_price"]), "sell"))
        curve = np.interp(times, equity[:, 0], equity[:, 1]) if len(equity) else np.zeros(len(times))
        sections.append(ChartSeries(f"Trading session: {symbol}", times, prices[:, 1], curve, marks))
    return sections


def backtest_sections(run: TradingRun, status: TradingRunStatus, cache: CandleCache, key: str) -> list[ChartSeries]:
    history = status.checkpoint.get("history")
    if not history:
        return []
    sections = []
    for symbol in run.spec.market.symbols:
        candles = cache.get(key, symbol, run.spec.market.timeframe, history["start_ms"], history["end_ms"])
        if candles is None or len(candles) < 2:
            continue
        clean, result = backtest_symbol(run.spec, candles)
        marks = []
        for trade in result.trades.records():
            marks.append(TradeMark(trade.entry_time, trade.entry_price, "buy"))
            marks.append(TradeMark(trade.exit_time, trade.exit_price, "sell"))
        sections.append(ChartSeries(f"Backtest: {symbol}", clean.time, clean.close, result.equity, marks))
    return sections


def write_report_files(output: Path, run: TradingRun, status: TradingRunStatus, cache: CandleCache) -> None:
    document = summary_document(run, status)
    (output / "summary.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    table = {k: v for k, v in document.items() if k not in ("phases", "run")}
    sections = session_sections(status) + backtest_sections(run, status, cache, cache_key(run.spec))
    html = render_report(run.metadata.name, status.phase, status.message or "", table, sections)
    (output / "report.html").write_text(html)

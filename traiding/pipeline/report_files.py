"""`summary.json` and `report.html` of a local run, from its status and its cached history.

The report tells the whole story of a run, also of one that stopped at a gate: what ran (pairs, strategy, windows),
each phase's outcome, the trading session (equity, trades, buy and hold beside the return), the backtest (per pair
metrics, every gate with its threshold, value and margin, the trades) and the data check. `LiveReport` rewrites it
while the run goes on, so a browser showing the file follows the run.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from traiding.domain.candles import CandleCache
from traiding.domain.metrics import market_change_pct
from traiding.domain.statemachine import TERMINAL, Phase
from traiding.domain.timeframes import DAY_MS, format_duration
from traiding.pipeline.compute import backtest_symbol, session_summary
from traiding.pipeline.events import json_safe
from traiding.pipeline.history import cache_key
from traiding.pipeline.price_series import PriceSeries
from traiding.pipeline.report_html import (
    REFRESH_SECONDS,
    Cell,
    Row,
    TradeSpan,
    equity_charts,
    facts,
    fmt_money,
    fmt_number,
    fmt_pct,
    fmt_price,
    fmt_signed_money,
    fmt_time,
    price_chart,
    render_page,
    table,
)
from traiding.resource import TradingRun, TradingRunStatus

LIVE_REPORT_INTERVAL_S = 2.0
# Checkpoint entry of a run against the simulator `traiding run` starts: where in the data its replay starts
# ("startMs", the data's time) and by how many whole days the replay moved the data's dates to the wall clock's
# ("shiftDays"). Market times in the status are replay times: the data's own are `shiftDays` earlier.
REPLAY_KEY = "replay"
TRADES_SHOWN_OPEN = 30  # longer trade lists start folded


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
            "market_change_pct": summary.get("marketChangePct"),
            "trades": summary.get("trades"),
            "wins": summary.get("wins"),
            "losses": summary.get("losses"),
            "max_drawdown_pct": summary.get("maxDrawdownPct"),
            "sharpe": summary.get("sharpe"),
            "sharpe_note": summary.get("sharpeNote"),
            "phases": {name: rec.model_dump(mode="json", exclude_none=True) for name, rec in status.phases.items()},
        }
    )
    return document


def write_report_files(
    output: Path, run: TradingRun, status: TradingRunStatus, cache: CandleCache, prices: PriceSeries
) -> None:
    """The final `summary.json` and `report.html` (which no longer reloads itself)."""
    document = summary_document(run, status)
    (output / "summary.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    _write(output / "report.html", render_run_report(run, status, cache, prices, refresh=False))


class LiveReport:
    """Writes `report.html` as the run goes: at once, at every phase change and at most every 2 s in between.

    The page reloads itself every few seconds until the run reaches a final phase.
    """

    def __init__(
        self,
        output: Path,
        run: TradingRun,
        cache: CandleCache,
        prices: PriceSeries,
        *,
        interval_s: float = LIVE_REPORT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = output / "report.html"
        self.run = run
        self.cache = cache
        self.prices = prices
        self.interval_s = interval_s
        self.clock = clock
        self._phase: str | None = None
        self._written_at = -float("inf")

    def update(self, status: TradingRunStatus) -> None:
        now = self.clock()
        if status.phase == self._phase and now - self._written_at < self.interval_s:
            return
        self._phase, self._written_at = status.phase, now
        finished = Phase(status.phase) in TERMINAL
        _write(self.path, render_run_report(self.run, status, self.cache, self.prices, refresh=not finished))


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # a browser reloading the page never reads half of it


# ----------------------------------------------------------------------------------------------- the page


def render_run_report(
    run: TradingRun, status: TradingRunStatus, cache: CandleCache, prices: PriceSeries, *, refresh: bool
) -> str:
    body = [
        _overview(run, status),
        _phases(status),
        _session(run, status, prices),
        _backtest(run, status, cache),
        _data_check(status),
    ]
    title = f"{run.metadata.name}: {status.phase}"
    return render_page(title, _outcome(run, status, refresh), body, refresh=refresh)


def _outcome(run: TradingRun, status: TradingRunStatus, refresh: bool) -> str:
    phase = status.phase
    stopped_in = next((n for n, rec in status.phases.items() if rec.state in ("Failed", "Cancelled")), None)
    if phase == Phase.SUCCEEDED:
        cls, head = "ok", "Succeeded"
    elif phase in (Phase.FAILED, Phase.CANCELLED):
        cls, head = "bad", f"{phase} in {stopped_in}" if stopped_in else phase
    elif phase == Phase.AWAITING_APPROVAL and not refresh:
        cls, head = "running", "Awaiting approval (the run continues with --resume --approve-live)"
    else:
        cls, head = "running", f"In progress: {phase}"
    reason = f" {status.reason}:" if status.reason and cls == "bad" else ""
    live = f" This page reloads every {REFRESH_SECONDS} s until the run ends." if refresh else ""
    return (
        f"<h1>TradingRun {html.escape(run.metadata.name)}</h1>"
        f"<p class='outcome {cls}'><b>{html.escape(head)}</b>{html.escape(reason)} "
        f"{html.escape(status.message or '')}<span class='note'>{html.escape(live)}</span></p>"
    )


def _overview(run: TradingRun, status: TradingRunStatus) -> str:
    spec = run.spec
    params = ", ".join(f"{k}={fmt_number(v)}" for k, v in spec.strategy.params.items()) or "defaults"
    venue = f"{spec.exchange.id} (exchange simulator)" if spec.exchange.simulator else spec.exchange.id
    risk = spec.risk
    stop = f"stop loss {risk.stopLossPct:g}%" if risk.stopLossPct else "no stop loss"
    rows = [
        ("Mode", spec.mode.value),
        ("Exchange", venue),
        ("Pairs", f"{', '.join(spec.market.symbols)} at {spec.market.timeframe}"),
        ("Strategy", f"{spec.strategy.name} ({params})"),
        ("Capital", fmt_money(spec.capital.initial, spec.capital.currency)),
        ("Costs", f"fee {spec.costs.feeRate * 100:g}% per side, slippage {spec.costs.slippagePct:g}%"),
        (
            "Risk",
            f"positions up to {risk.maxPositionFraction:.0%} of equity, {stop}, daily loss limit "
            f"{risk.dailyLossLimitPct:g}%, kill switch at a {risk.maxDrawdownPct:g}% drawdown",
        ),
    ]
    shift = int(status.checkpoint.get(REPLAY_KEY, {}).get("shiftDays", 0)) * DAY_MS

    def span(start: int, end: int) -> str:
        replayed = f"{fmt_time(start)} to {fmt_time(end)} UTC"
        if not shift:
            return replayed
        return f"{fmt_time(start - shift)} to {fmt_time(end - shift)} UTC in the data, replayed {replayed}"

    if shift:
        rows.append(
            (
                "Market replay",
                f"the simulator replayed the candles on the wall clock's date, {shift // DAY_MS} days after their "
                "own: the times below are replay times, the data's own dates are that many days earlier",
            )
        )
    history = status.checkpoint.get("history")
    if history:
        rows.append(
            (
                "Backtest window (lookback)",
                f"{span(history['start_ms'], history['end_ms'])} "
                f"({spec.gates.dataCheck.lookback} of {spec.market.timeframe} candles)",
            )
        )
    session = status.checkpoint.get("session", {})
    if "started_ms" in session:
        rows.append(
            (
                "Trading session",
                f"{span(session['started_ms'], session['ends_ms'])} ({spec.session.duration}, market time)",
            )
        )
    return "<h2>Run</h2>" + facts(rows)


def _phases(status: TradingRunStatus) -> str:
    rows: list[Row] = [
        [
            name,
            Cell(rec.state, "pass" if rec.state == "Passed" else "fail" if rec.state == "Failed" else ""),
            fmt_time(rec.startedAt.timestamp() * 1000) if rec.startedAt else "",
            fmt_time(rec.finishedAt.timestamp() * 1000) if rec.finishedAt else "",
            str(rec.attempts),
            rec.message,
        ]
        for name, rec in status.phases.items()
    ]
    return "<h2>Phases</h2>" + table("phases", ["phase", "state", "started", "finished", "attempts", "message"], rows)


# ----------------------------------------------------------------------------------------------- session


def _session(run: TradingRun, status: TradingRunStatus, price_series: PriceSeries) -> str:
    session = status.checkpoint.get("session", {})
    if "started_ms" not in session:
        return ""
    currency = run.spec.capital.currency
    summary = session_summary(session)
    sharpe = fmt_number(summary.sharpe) if summary.sharpe is not None else (summary.sharpeNote or "n/a")
    # A status written before the series left the checkpoint still has it there.
    prices = PriceSeries(session["prices"]).arrays() if "prices" in session else price_series.arrays()
    trades: list[dict[str, Any]] = session.get("trades", [])
    equity = np.asarray(session.get("equity", []), dtype=np.float64).reshape(-1, 2)
    parts = [
        "<h2>Trading session</h2>",
        facts(
            [
                ("Final equity", fmt_money(summary.finalEquity, currency)),
                ("Profit and loss", fmt_signed_money(summary.pnl, currency)),
                ("Return on capital", fmt_pct(summary.roiPct)),
                ("Market change (buy and hold, same candles)", fmt_pct(summary.marketChangePct)),
                ("Trades (wins / losses)", f"{summary.trades or 0} ({summary.wins or 0} / {summary.losses or 0})"),
                ("Max drawdown", fmt_pct(summary.maxDrawdownPct, signed=False)),
                ("Sharpe (annualised)", sharpe),
            ]
        ),
        _session_pairs(run.spec.market.symbols, prices, trades, currency),
        equity_charts("Session", equity[:, 0].astype(np.int64), equity[:, 1], currency),
    ]
    for symbol, series in prices.items():
        spans = [
            TradeSpan(int(t["entry_time"]), int(t["exit_time"]), t["entry_price"], t["exit_price"], t["pnl"])
            for t in trades
            if t["symbol"] == symbol
        ]
        parts.append(price_chart(f"{symbol}: closes and trades", series[:, 0].astype(np.int64), series[:, 1], spans))
    parts.append(_session_trades(trades, int(session.get("closed_trades", len(trades)))))
    return "".join(parts)


def _session_pairs(
    symbols: list[str], prices: dict[str, npt.NDArray[np.float64]], trades: list[dict[str, Any]], currency: str
) -> str:
    rows: list[Row] = []
    for symbol in symbols:
        own = [t for t in trades if t["symbol"] == symbol]
        closes = prices.get(symbol, np.empty((0, 2)))[:, 1]
        rows.append(
            [
                symbol,
                Cell(str(len(own)), "num"),
                Cell(str(sum(1 for t in own if t["pnl"] > 0)), "num"),
                Cell(fmt_signed_money(sum(float(t["pnl"]) for t in own), currency), "num"),
                Cell(fmt_pct(market_change_pct(closes)), "num"),
            ]
        )
    return table("pairs", ["pair", "trades", "wins", "PnL", "market change"], rows, "Per pair")


def _session_trades(trades: list[dict[str, Any]], closed: int) -> str:
    rows: list[Row] = [
        [
            t["symbol"],
            fmt_time(t["entry_time"]),
            Cell(fmt_price(t["entry_price"]), "num"),
            fmt_time(t["exit_time"]),
            Cell(fmt_price(t["exit_price"]), "num"),
            Cell(fmt_number(t["amount"], 6), "num"),
            Cell(fmt_signed_money(t["pnl"]), "num"),
            t["reason"].replace("_", " "),
        ]
        for t in trades
    ]
    caption = (
        f"{closed} trades" if closed == len(trades) else f"{len(trades)} of {closed} trades (events.jsonl has all)"
    )
    headers = ["pair", "entry (UTC)", "entry price", "exit (UTC)", "exit price", "amount", "PnL", "exit reason"]
    return _folded(table("trades", headers, rows, caption), len(rows))


# ----------------------------------------------------------------------------------------------- backtest

_GATE_UNITS = {"max_drawdown_pct": "%", "total_return_pct": "%", "win_rate_pct": "%"}


def _gate_value(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    decimals = 0 if metric == "trades" else 2
    return f"{value:,.{decimals}f}{_GATE_UNITS.get(metric, '')}"


def _backtest(run: TradingRun, status: TradingRunStatus, cache: CandleCache) -> str:
    record = status.phases.get(Phase.BACKTEST.value)
    results = {s: r for s, r in (record.results if record else {}).items() if isinstance(r, dict) and "metrics" in r}
    if not results:
        return ""
    parts = ["<h2>Backtest over the lookback</h2>"]
    pair_rows: list[Row] = []
    gate_rows: list[Row] = []
    notes: set[str] = set()
    for symbol, result in results.items():
        m = result["metrics"]
        gates = result.get("gates", [])
        passed = sum(1 for g in gates if g["passed"])
        if result.get("annualisedNote"):
            notes.add(result["annualisedNote"])
        pair_rows.append(
            [
                symbol,
                Cell(fmt_number(m.get("candles")), "num"),
                Cell(fmt_number(m.get("trades")), "num"),
                Cell(fmt_pct(m.get("total_return_pct")), "num"),
                Cell(fmt_pct(m.get("market_change_pct")), "num"),
                Cell(fmt_number(m.get("sharpe")), "num"),
                Cell(fmt_number(m.get("sortino")), "num"),
                Cell(fmt_pct(m.get("max_drawdown_pct"), signed=False), "num"),
                Cell(fmt_pct(m.get("win_rate_pct"), signed=False), "num"),
                Cell(fmt_number(m.get("profit_factor")), "num"),
                Cell(f"{passed} of {len(gates)}", "pass" if passed == len(gates) else "fail"),
            ]
        )
        for gate in gates:
            margin = gate["margin"]
            bound = "at least" if gate["comparison"] == ">=" else "at most"
            gate_rows.append(
                [
                    symbol,
                    gate["name"],
                    f"{bound} {_gate_value(gate['metric'], gate['threshold'])}",
                    Cell(_gate_value(gate["metric"], gate["actual"]), "num"),
                    Cell("pass" if gate["passed"] else "fail", "pass" if gate["passed"] else "fail"),
                    Cell(
                        "n/a"
                        if margin is None
                        else ("+" if margin >= 0 else "-") + _gate_value(gate["metric"], abs(margin)),
                        "num",
                    ),
                    gate["message"],
                ]
            )
    headers = ["pair", "candles", "trades", "return", "market change", "Sharpe", "Sortino", "max drawdown"]
    headers += ["win rate", "profit factor", "gates passed"]
    caption = "Per pair; market change is buy and hold over the same candles"
    parts.append(table("pairs", headers, pair_rows, caption))
    parts.extend(f"<p class='note'>Sharpe, Sortino: {html.escape(note)}.</p>" for note in sorted(notes))
    gate_headers = ["pair", "gate", "threshold", "value", "result", "margin", "detail"]
    parts.append(
        table("gates", gate_headers, gate_rows, "Gates (the margin is how far inside (+) or outside (-) the threshold)")
    )
    parts.extend(_backtest_charts(run, status, cache, list(results)))
    return "".join(parts)


def _backtest_charts(run: TradingRun, status: TradingRunStatus, cache: CandleCache, symbols: list[str]) -> list[str]:
    history = status.checkpoint.get("history")
    if not history:
        return []
    parts = []
    currency = run.spec.capital.currency
    for symbol in symbols:
        candles = cache.get(
            cache_key(run.spec), symbol, run.spec.market.timeframe, history["start_ms"], history["end_ms"]
        )
        if candles is None or len(candles) < 2:
            continue
        clean, result = backtest_symbol(run.spec, candles)
        records = result.trades.records()
        spans = [TradeSpan(t.entry_time, t.exit_time, t.entry_price, t.exit_price, t.pnl) for t in records]
        parts.append(f"<h3>{html.escape(symbol)}</h3>")
        parts.append(price_chart(f"{symbol}: closes and backtest trades", clean.time, clean.close, spans))
        # The equity is marked at each candle's close: drawn at the close times, the last point included.
        closes = clean.time + int(result.metrics.candle_period_s or 0) * 1000
        parts.append(equity_charts(f"{symbol} backtest", closes, result.equity, currency))
        rows: list[Row] = [
            [
                fmt_time(t.entry_time),
                Cell(fmt_price(t.entry_price), "num"),
                fmt_time(t.exit_time),
                Cell(fmt_price(t.exit_price), "num"),
                Cell(fmt_signed_money(t.pnl), "num"),
                Cell(fmt_pct(t.return_pct), "num"),
                t.exit_reason.replace("_", " "),
            ]
            for t in records
        ]
        headers = ["entry (UTC)", "entry price", "exit (UTC)", "exit price", "PnL", "return", "exit reason"]
        parts.append(_folded(table("trades", headers, rows, f"{symbol}: {len(rows)} backtest trades"), len(rows)))
    return parts


def _folded(content: str, rows: int) -> str:
    if rows <= TRADES_SHOWN_OPEN:
        return content
    return f"<details><summary>{rows} trades (show)</summary>{content}</details>"


# ----------------------------------------------------------------------------------------------- data check


def _data_check(status: TradingRunStatus) -> str:
    record = status.phases.get(Phase.DATA_CHECK.value)
    results = {s: r for s, r in (record.results if record else {}).items() if isinstance(r, dict) and "candles" in r}
    if not results:
        return ""
    rows: list[Row] = [
        [
            symbol,
            Cell(fmt_number(r["candles"]), "num"),
            Cell(fmt_number(r["expected"]), "num"),
            Cell(fmt_number(r["missing"]), "num"),
            Cell(fmt_pct(r["gapRatio"] * 100, signed=False), "num"),
            Cell(fmt_number(r["gaps"]), "num"),
            r["longestGap"],
            Cell(fmt_number(r["duplicates"]), "num"),
            Cell(fmt_number(r.get("outOfOrder", 0)), "num"),
            Cell(fmt_number(r["outliers"]), "num"),
            format_duration(int(r["stalenessMs"])) if r.get("stalenessMs") is not None else "n/a",
        ]
        for symbol, r in results.items()
    ]
    headers = ["pair", "candles", "expected", "missing", "gap ratio", "gaps", "longest gap", "duplicates"]
    headers += ["out of order", "outliers", "staleness"]
    return "<h2>Data check</h2>" + table("data", headers, rows)

"""`traiding backtest`: run a strategy over candle files and print its metrics (a table, or one JSON object).

    traiding backtest --strategy NAME [--data PATH ...] [--pairs P ...] [--timeframe TF] [--timerange START-END]
                      [--param k=v ...] [--fee-rate F] [--initial-capital C] [--slippage S]
                      [--position-fraction F] [--stop-loss-pct P] [--take-profit-pct P] [--trades] [--json]

`--data` is a candle file (freqtrade json, jsongz, feather, or CSV) or a folder of them such as a freqtrade data
directory, repeatable; without it, the candles bundled with traiding. In a folder `--pairs` and `--timeframe`
choose the files, as in freqtrade. Each file is backtested on its own with the full capital; several give a
per-pair table. `--timerange` keeps the candles opening from START to END (freqtrade's syntax, both included).

`--json` prints exactly one JSON object. For one file: the metrics (`candles`, `trades`, `final_equity`,
`total_return_pct`, `max_drawdown_pct`, `sharpe`, `win_rate`, `market_change_pct`, ... see
traiding/domain/metrics.py), plus `strategy`, `params`, `config`, `data`, `gaps`, `row_order` and `trade_list`;
for several, `strategy`, `params`, `config` and `pairs`, one such object per file. Undefined metrics are null.
Rows a file holds twice or out of order are said (on stderr, and in `row_order`), then backtested sorted.
Mistakes in the input are `UserError`s: the dispatcher prints "error: ..." and exits 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from traiding.data import BUNDLED_CANDLES
from traiding.domain.backtest import BacktestConfig, BacktestResult, run_backtest
from traiding.domain.candle_files import find_candle_files, parse_candle_file_name
from traiding.domain.candles import Candles, RowOrder, load_candles, normalize, row_order
from traiding.domain.metrics import ANNUALISED_METRICS
from traiding.domain.strategies import Strategy, get_strategy
from traiding.domain.timeframes import format_time, parse_timerange
from traiding.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BacktestConfig()
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="PATH",
        help="candles: a freqtrade json/jsongz/feather or CSV file, or a folder of them such as a freqtrade data "
        "directory; repeatable (default: the bundled candles, BTC/USDT and ETH/USDT at 5m and 1h)",
    )
    parser.add_argument("--pairs", nargs="+", metavar="PAIR", help="pairs to take from a folder, e.g. ETH/USDT")
    parser.add_argument("--timeframe", metavar="TF", help="timeframe to take from a folder, e.g. 5m")
    parser.add_argument(
        "--timerange",
        metavar="START-END",
        help="candles opening from START to END, e.g. 20210101-20210301 (or 20210101-)",
    )
    parser.add_argument("--strategy", required=True, metavar="NAME", help="strategy name, e.g. sma-crossover")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="strategy parameter, repeatable (e.g. --param fast=20 --param slow=50)",
    )
    parser.add_argument(
        "--fee-rate", type=float, default=defaults.fee_rate, metavar="F", help="fee per side, fraction of notional"
    )
    parser.add_argument("--initial-capital", type=float, default=defaults.initial_capital, metavar="C")
    parser.add_argument(
        "--slippage", type=float, default=defaults.slippage, metavar="S", help="fraction worsening each fill"
    )
    parser.add_argument(
        "--position-fraction",
        type=float,
        default=defaults.position_fraction,
        metavar="F",
        help="fraction of equity per entry (default 1.0: all in)",
    )
    parser.add_argument("--stop-loss-pct", type=float, default=None, metavar="P", help="stop loss, percent")
    parser.add_argument("--take-profit-pct", type=float, default=None, metavar="P", help="take profit, percent")
    parser.add_argument("--trades", action="store_true", help="list every trade after the metrics")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


@dataclass(frozen=True)
class Source:
    """One candle file to backtest, and the name it goes by in the output (BTC_USDT-5m, or the path)."""

    path: Path
    label: str


def run(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    config = _config(args)
    strategy = get_strategy(args.strategy, params)
    sources = select_sources(args.data, args.pairs, args.timeframe)
    try:
        window = parse_timerange(args.timerange) if args.timerange else (None, None)
    except ValueError as exc:
        raise UserError(f"--timerange: {exc}") from None
    resolved = strategy.params.model_dump()  # every parameter, defaults included
    reports = [backtest_source(source, strategy, config, window, args.timerange) for source in sources]
    if args.json:
        for report in reports:  # said beside the JSON, which stays one object
            for note in report["notes"]:
                print(f"note: {report['data']}: {note}", file=sys.stderr)
        several = {"config": config.model_dump(), "pairs": reports}
        document = {"strategy": strategy.name, "params": resolved, **(reports[0] if len(reports) == 1 else several)}
        json.dump(document, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(strategy.name, resolved, config, reports, show_trades=args.trades))
    sys.stdout.flush()
    return 0


def select_sources(data: list[str], pairs: list[str] | None, timeframe: str | None) -> list[Source]:
    """The files `--data` names (the bundled folder without it); folders give their files, by pair and timeframe."""
    paths = [Path(text) for text in data] or [BUNDLED_CANDLES]
    if (pairs or timeframe) and not any(p.is_dir() for p in paths):
        raise UserError("--pairs and --timeframe choose files in a folder; with --data FILE, name the files instead")
    sources: list[Source] = []
    for path in paths:
        if path.is_dir():
            sources.extend(_from_folder(path, pairs, timeframe))
        else:
            named = parse_candle_file_name(path)
            sources.append(Source(path, named.name if named else str(path)))
    seen: set[Path] = set()
    for source in sources:
        if source.path.resolve() in seen:
            raise UserError(f"--data: {source.path} is named twice")
        seen.add(source.path.resolve())
    return sources


def _from_folder(folder: Path, pairs: list[str] | None, timeframe: str | None) -> list[Source]:
    files = find_candle_files(folder)
    where = "the bundled candles" if folder == BUNDLED_CANDLES else str(folder)
    timeframes = list(dict.fromkeys(f.timeframe for f in files))
    if not files:
        raise UserError(f"{where}: no candle files named like BTC_USDT-5m.json")
    if timeframe is None and len(timeframes) > 1:
        raise UserError(f"{where} holds candles at {', '.join(timeframes)}: choose one with --timeframe")
    if timeframe is not None:
        files = [f for f in files if f.timeframe == timeframe]
        if not files:
            raise UserError(f"{where}: no {timeframe} candles (it holds {', '.join(timeframes)})")
    if pairs:
        wanted = [p.upper() for p in pairs]
        held = {f.symbol for f in files}
        missing = [p for p in wanted if p not in held]
        if missing:
            raise UserError(f"{where}: no candles for {', '.join(missing)} (it holds {', '.join(sorted(held))})")
        files = [f for f in files if f.symbol in wanted]
    return [Source(f.path, f.name) for f in files]


def backtest_source(
    source: Source,
    strategy: Strategy[Any],
    config: BacktestConfig,
    window: tuple[int | None, int | None],
    timerange: str | None,
) -> dict[str, Any]:
    """One file's report: its metrics, how its rows were ordered, its trades."""
    raw = load_candles(source.path)
    order = row_order(raw)
    candles = _within(normalize(raw), window)
    if len(candles) == 0:
        raise UserError(
            f"{source.path}: no candles in --timerange {timerange} (the file runs from "
            f"{format_time(int(raw.time.min()))} to {format_time(int(raw.time.max()))})"
        )
    if len(candles) <= strategy.warmup:
        raise UserError(
            f"{source.path}: {len(candles)} candles, no more than the strategy's warm-up of {strategy.warmup} "
            f"({strategy!r}): it could not give a single signal; use more candles or shorter periods"
        )
    signals = strategy.signals(candles)
    result = run_backtest(candles, signals.entries, signals.exits, config)
    report = build_report(source.label, candles, result, order)
    if timerange:
        report["timerange"] = timerange
    return report


def _within(candles: Candles, window: tuple[int | None, int | None]) -> Candles:
    start, end = window
    keep = np.ones(len(candles), dtype=np.bool_)
    if start is not None:
        keep &= candles.time >= start
    if end is not None:
        keep &= candles.time <= end
    index = np.flatnonzero(keep)
    return candles.slice(int(index[0]), int(index[-1]) + 1) if index.size else candles.slice(0, 0)


def parse_params(items: list[str]) -> dict[str, Any]:
    """`k=v` strings to a dict; values become int, float or bool where they read as one, else stay text."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--param {item!r}: expected KEY=VALUE, e.g. --param fast=20")
        if key in params:
            raise UserError(f"--param {key} given twice")
        params[key] = _scalar(value.strip())
    return params


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            break
        return value
    return text


def _config(args: argparse.Namespace) -> BacktestConfig:
    try:
        return BacktestConfig(
            initial_capital=args.initial_capital,
            fee_rate=args.fee_rate,
            slippage=args.slippage,
            position_fraction=args.position_fraction,
            stop_loss_pct=args.stop_loss_pct,
            take_profit_pct=args.take_profit_pct,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg'].lower()}" for e in exc.errors() if e["loc"]
        )
        raise UserError(f"invalid backtest settings: {problems}") from None


def count_gaps(candles: Candles) -> int:
    """Spacings longer than the usual candle period (the median spacing): data the backtest did not invent."""
    if len(candles) < 3:
        return 0
    steps = np.diff(candles.time)
    return int(np.count_nonzero(steps > np.median(steps)))


def build_report(data: str, candles: Candles, result: BacktestResult, order: RowOrder) -> dict[str, Any]:
    notes = []
    if not order.clean:
        notes.append(f"{order.describe()}; backtested sorted by time with one row per time (the later row wins)")
    if result.metrics.annualised_note:
        notes.append(f"CAGR, Sharpe, Sortino and Calmar are {result.metrics.annualised_note}")
    return {
        "data": data,
        "config": result.config.model_dump(),
        "gaps": count_gaps(candles),
        **result.metrics.model_dump(),
        "row_order": asdict(order),
        "notes": notes,
        "trade_list": [trade.as_dict() for trade in result.trades.records()],
    }


_ROWS: tuple[tuple[str, str, str], ...] = (
    # (key, label, format) - format "pct" appends %, "ratio" shows a fraction as percent
    ("candles", "Candles", "int"),
    ("gaps", "Gaps in data (not interpolated)", "int"),
    ("start_time", "Start", "time"),
    ("end_time", "End (last candle open)", "time"),
    ("initial_capital", "Initial capital", "money"),
    ("final_equity", "Final equity", "money"),
    ("total_return_pct", "Total return", "pct"),
    ("market_change_pct", "Market change (buy and hold)", "pct"),
    ("cagr_pct", "CAGR", "pct"),
    ("sharpe", "Sharpe (annualised)", "num"),
    ("sortino", "Sortino (annualised)", "num"),
    ("calmar", "Calmar", "num"),
    ("max_drawdown_pct", "Max drawdown", "pct"),
    ("max_drawdown_duration_s", "Max drawdown duration", "duration"),
    ("trades", "Trades", "int"),
    ("win_rate", "Win rate", "ratio"),
    ("profit_factor", "Profit factor", "num"),
    ("expectancy", "Expectancy per trade", "money"),
    ("avg_trade_pct", "Average trade", "pct"),
    ("best_trade_pct", "Best trade", "pct"),
    ("worst_trade_pct", "Worst trade", "pct"),
    ("exposure_pct", "Exposure", "pct"),
    ("total_fees", "Fees paid", "money"),
)
_PAIR_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("candles", "candles", "int"),
    ("trades", "trades", "int"),
    ("total_return_pct", "return", "pct"),
    ("market_change_pct", "market", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("max_drawdown_pct", "max DD", "pct"),
    ("win_rate", "win rate", "ratio"),
    ("profit_factor", "profit f.", "num"),
)


def render_table(
    strategy: str, params: dict[str, Any], config: BacktestConfig, reports: list[dict[str, Any]], *, show_trades: bool
) -> str:
    described = ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"
    stop, target = config.stop_loss_pct, config.take_profit_pct
    data = reports[0]["data"] if len(reports) == 1 else f"{len(reports)} files"
    lines = [
        f"Backtest  {strategy} ({described})  on {data}",
        f"fee {config.fee_rate:g}/side, slippage {config.slippage:g}, position {config.position_fraction:.0%} of "
        f"equity, stop loss {'none' if stop is None else f'{stop}%'}, take profit "
        f"{'none' if target is None else f'{target}%'}",
        "",
    ]
    if len(reports) == 1:
        report = reports[0]
        width = max(len(label) for _, label, _ in _ROWS)
        for key, label, kind in _ROWS:
            value = _format(report.get(key), kind)
            if report.get(key) is None and key in ANNUALISED_METRICS and report.get("annualised_note"):
                value = "not meaningful (too short to annualise, see below)"
            lines.append(f"  {label:<{width}}  {value}")
    else:
        name_width = max(len(r["data"]) for r in reports)
        header = "  ".join(f"{label:>9}" for _, label, _ in _PAIR_COLUMNS)
        lines.append(f"  {'pair':<{name_width}}  {header}")
        for report in reports:
            cells = "  ".join(f"{_format(report.get(key), kind):>9}" for key, _, kind in _PAIR_COLUMNS)
            lines.append(f"  {report['data']:<{name_width}}  {cells}")
        lines.append("  (each file backtested on its own with the full capital; market = buy and hold)")
    for report in reports:
        lines.extend(f"  note: {report['data']}: {note}" for note in report["notes"])
    if show_trades:
        lines.extend(_trade_lines(reports))
    elif any(r["trades"] for r in reports):
        lines.append("  (--trades lists every trade)")
    return "\n".join(lines) + "\n"


def _trade_lines(reports: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "  pair           entry (UTC)        entry price  exit (UTC)          exit price          PnL  exit reason",
    ]
    for report in reports:
        for t in report["trade_list"]:
            lines.append(
                f"  {report['data']:<13}  {_format(t['entry_time'], 'time')[:16]}  {t['entry_price']:>11.6g}  "
                f"{_format(t['exit_time'], 'time')[:16]}  {t['exit_price']:>11.6g}  {t['pnl']:>11,.2f}  "
                f"{t['exit_reason'].replace('_', ' ')}"
            )
    return lines


def _format(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "int":
        return f"{value:,}"
    if kind == "time":
        return datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "pct":
        return f"{value:.2f}%"
    if kind == "ratio":
        return f"{value * 100:.2f}%"
    if kind == "duration":
        return _duration(float(value))
    return f"{value:.3f}"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}d {hours}h {mins}m" if days else f"{hours}h {mins}m"

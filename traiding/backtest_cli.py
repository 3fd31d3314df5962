"""`traiding backtest`: run a strategy over a candle file and print its metrics (a table, or one JSON object).

    traiding backtest --data FILE --strategy NAME [--param k=v ...] [--fee-rate F] [--initial-capital C]
                      [--slippage S] [--position-fraction F] [--stop-loss-pct P] [--take-profit-pct P] [--json]

`--json` prints exactly one JSON object: the metrics (`candles`, `trades`, `final_equity`, `total_return_pct`,
`max_drawdown_pct`, `sharpe`, `win_rate`, ... see traiding/domain/metrics.py), plus `strategy`, `params`,
`config`, `data`, `gaps`. Undefined metrics are null. Mistakes in the input (a file, a strategy, a
parameter) are `UserError`s: the dispatcher prints "error: ..." and exits 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import ValidationError

from traiding.domain.backtest import BacktestConfig, BacktestResult, run_backtest
from traiding.domain.candles import Candles, load_candles, normalize
from traiding.domain.strategies import get_strategy
from traiding.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BacktestConfig()
    parser.add_argument("--data", required=True, metavar="FILE", help="candles: freqtrade JSON or CSV (.gz ok)")
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
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    config = _config(args)
    strategy = get_strategy(args.strategy, params)
    candles = normalize(load_candles(args.data))
    if len(candles) == 0:
        raise UserError(f"{args.data}: holds no candles")
    signals = strategy.signals(candles)
    result = run_backtest(candles, signals.entries, signals.exits, config)
    resolved = strategy.params.model_dump()  # every parameter, defaults included
    report = build_report(args.data, strategy.name, resolved, candles, result)
    if args.json:
        json.dump(report, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(report))
    return 0


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


def build_report(
    data: str, strategy: str, params: dict[str, Any], candles: Candles, result: BacktestResult
) -> dict[str, Any]:
    metrics = result.metrics.model_dump()
    return {
        "strategy": strategy,
        "params": params,
        "data": str(data),
        "config": result.config.model_dump(),
        "gaps": count_gaps(candles),
        **metrics,
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


def render_table(report: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in report["params"].items()) or "defaults"
    config = report["config"]
    lines = [
        f"Backtest  {report['strategy']} ({params})  on {report['data']}",
        f"fee {config['fee_rate']:g}/side, slippage {config['slippage']:g}, "
        f"position {config['position_fraction']:.0%} of equity, stop loss "
        f"{'none' if config['stop_loss_pct'] is None else str(config['stop_loss_pct']) + '%'}, take profit "
        f"{'none' if config['take_profit_pct'] is None else str(config['take_profit_pct']) + '%'}",
        "",
    ]
    width = max(len(label) for _, label, _ in _ROWS)
    for key, label, kind in _ROWS:
        lines.append(f"  {label:<{width}}  {_format(report.get(key), kind)}")
    return "\n".join(lines) + "\n"


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

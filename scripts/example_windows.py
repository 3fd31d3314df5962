#!/usr/bin/env python3
"""How robust an example's backtest gate is: the manifest's Backtest phase over every lookback window that ends
at midnight UTC in the bundled candles, counted as passed or failed, near the pinned start and over the whole span.

    .venv/bin/python scripts/example_windows.py examples/dry-run.yaml [--symbol BTC/USDT] [--near-days 14]

The examples' comments quote its output, so a reader can check what they claim.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from traiding.data import bundled_candle_files
from traiding.domain.candles import candles_between, load_candles
from traiding.domain.gates import evaluate_gates
from traiding.domain.timeframes import DAY_MS, duration_ms, format_time
from traiding.manifest import load_manifest
from traiding.pipeline.compute import backtest_symbol, gate_thresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--symbol", help="another bundled pair, with the same settings (default: the manifest's)")
    parser.add_argument("--near-days", type=int, default=14, help="windows this many days around the pinned start")
    args = parser.parse_args()
    spec = load_manifest(args.manifest).spec
    symbol = args.symbol or spec.market.symbols[0]
    [file] = [f for f in bundled_candle_files() if (f.symbol, f.timeframe) == (symbol, spec.market.timeframe)]
    candles = load_candles(file.path)
    lookback = duration_ms(spec.gates.dataCheck.lookback)
    thresholds = gate_thresholds(spec)
    first_end = -(-(int(candles.time[0]) + lookback) // DAY_MS) * DAY_MS
    ends = range(first_end, int(candles.time[-1]), DAY_MS)
    start = spec.exchange.simulator.start if spec.exchange.simulator else None
    pinned = int(start.timestamp() * 1000) // DAY_MS * DAY_MS if start else None
    passed, near, near_passed, beat_holding = 0, 0, 0, 0
    for end in ends:
        _, result = backtest_symbol(spec, candles_between(candles, end - lookback, end))
        metrics = result.metrics
        values = metrics.gate_values()
        values["win_rate_pct"] = None if metrics.win_rate is None else metrics.win_rate * 100
        ok = evaluate_gates(values, thresholds, metrics.notes()).passed
        passed += ok
        beat_holding += metrics.total_return_pct > (metrics.market_change_pct or 0.0)
        if pinned is not None and abs(end - pinned) <= args.near_days * DAY_MS:
            near, near_passed = near + 1, near_passed + ok
    gates = ", ".join(f"{t.name} {t.comparison} {t.threshold:g}" for t in thresholds)
    print(f"{args.manifest}: {symbol} {spec.market.timeframe}, {spec.strategy.name} {spec.strategy.params}, ", end="")
    print(f"lookback {spec.gates.dataCheck.lookback}; gates {gates}")
    print(f"windows ending at 00:00 UTC from {format_time(ends[0])} to {format_time(ends[-1])}: {len(ends)}")
    print(f"  passed the gates: {passed} of {len(ends)}")
    if pinned is not None:
        print(f"  within {args.near_days} days of the pinned start {format_time(pinned)}: {near_passed} of {near}")
    print(f"  returned more than buy and hold: {beat_holding} of {len(ends)}")


if __name__ == "__main__":
    main()

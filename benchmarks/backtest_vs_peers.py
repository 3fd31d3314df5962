"""Our backtester against backtesting.py and vectorbt: same data, same strategy, same results, and the speed.

    .venv/bin/pip install backtesting pandas vectorbt      # the peers (the `bench` extra)
    .venv/bin/python benchmarks/backtest_vs_peers.py [--data FILE] [--repeats N]

SMA crossover 20/50, long only, signals on the close, fills at the next open, 0.1 % fee per side, 10,000
starting capital, 99.99 % of equity per entry (backtesting.py reads a size of exactly 1 as one unit, so
every engine gets the same fraction just below 1). Three engines, each timed on the backtest itself with
the candles already in memory (median of `--repeats` runs; vectorbt after a warm-up call that compiles
its numba code):

- ours: `traiding.domain.backtest.run_backtest`, metrics included;
- backtesting.py: `backtesting.lib.FractionalBacktest(..., trade_on_close=False, finalize_trades=True)`,
  whose `run()` includes its statistics;
- vectorbt: `Portfolio.from_signals` with the signals shifted one candle and `price=open` (next-open
  fills), then `final_value()` and the trade count.

Three rounds: "engine" gives every engine the same precomputed entry/exit arrays (only the backtest
differs); "end to end" lets each compute its SMAs and crossovers its own way (a check of our strategy's
signals too); "engine with a stop loss" checks our intrabar stop semantics (stop price, gaps through it,
the fill candle itself) against backtesting.py's `sl=`. Then one million synthetic candles (a seeded
random walk) through ours alone.

Known differences, all within the 0.5 % equity target: backtesting.py trades whole satoshis (1e-8 BTC) and
closes a position open at the end at the last candle's open (ours: its close); vectorbt leaves it open and
values it at the last close without the exit fee.

Prints PASS/FAIL per target and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from traiding.domain.backtest import BacktestConfig, run_backtest
from traiding.domain.candles import Candles, load_candles
from traiding.domain.strategies import get_strategy

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars would bury the report

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "BTC_USDT-5m.json"
FAST, SLOW = 20, 50
FEE = 0.001
CAPITAL = 10_000.0
FRACTION = 0.9999
EQUITY_TOLERANCE = 0.005
FRACTIONAL_UNIT = 1e-8  # FractionalBacktest's default unit: one satoshi
STOP_LOSS_PCT = 1.0
MIN_SPEEDUP_VS_BACKTESTING = 50.0
SYNTHETIC_CANDLES = 1_000_000
SYNTHETIC_BUDGET_S = 1.0

BoolArray = npt.NDArray[np.bool_]
T = TypeVar("T")


@dataclass
class Outcome:
    engine: str
    seconds: float
    trades: int
    final_equity: float
    # Candle index of each trade's entry and exit fill: "same trades" means the same round trips.
    entry_bars: list[int]
    exit_bars: list[int]


def timed(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Median wall time of `repeats` calls, and the last call's result."""
    times = []
    result: T | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(times), result


def our_config() -> BacktestConfig:
    return BacktestConfig(initial_capital=CAPITAL, fee_rate=FEE, position_fraction=FRACTION)


def ours_engine(
    candles: Candles, entries: BoolArray, exits: BoolArray, repeats: int, stop_loss_pct: float | None = None
) -> Outcome:
    config = our_config().model_copy(update={"stop_loss_pct": stop_loss_pct})
    seconds, result = timed(lambda: run_backtest(candles, entries, exits, config), repeats)
    return our_outcome(seconds, result)


def our_outcome(seconds: float, result: Any) -> Outcome:
    trades = result.trades
    return Outcome(
        "ours",
        seconds,
        result.metrics.trades,
        result.metrics.final_equity,
        trades.entry_index.tolist(),
        trades.exit_index.tolist(),
    )


def ours_end_to_end(candles: Candles, repeats: int) -> Outcome:
    config = our_config()
    strategy = get_strategy("sma-crossover", {"fast": FAST, "slow": SLOW})

    def run() -> Any:
        signals = strategy.signals(candles)
        return run_backtest(candles, signals.entries, signals.exits, config)

    seconds, result = timed(run, repeats)
    return our_outcome(seconds, result)


def to_frame(candles: Candles) -> Any:
    import pandas as pd  # noqa: PLC0415 - a peer's dependency, only for this benchmark

    index = pd.to_datetime(candles.time, unit="ms", utc=True).tz_localize(None)
    return pd.DataFrame(
        {
            "Open": candles.open,
            "High": candles.high,
            "Low": candles.low,
            "Close": candles.close,
            "Volume": candles.volume,
        },
        index=index,
    )


def backtesting_py(
    frame: Any, entries: BoolArray | None, exits: BoolArray | None, repeats: int, stop_loss_pct: float | None = None
) -> Outcome:
    """backtesting.py with precomputed signals, or (both None) with its own SMA/crossover idiom.

    With `stop_loss_pct`, each entry order carries `sl=` at that distance below the fill price. The fill is the
    next open, which backtesting.py only learns when the order fills, so the harness reads it from the data
    (the engine itself sees nothing of the future). FractionalBacktest trades in satoshi units: its prices
    are scaled by `FRACTIONAL_UNIT`, and so must the stop be.
    """
    from backtesting import Strategy  # noqa: PLC0415
    from backtesting.lib import FractionalBacktest, crossover  # noqa: PLC0415
    from backtesting.test import SMA  # noqa: PLC0415

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, FAST)
            self.slow = self.I(SMA, self.data.Close, SLOW)

        def next(self) -> None:
            if self.position:
                if crossover(self.slow, self.fast):
                    self.position.close()
            elif crossover(self.fast, self.slow):
                self.buy(size=FRACTION)

    class GivenSignals(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.entry = self.I(lambda: entries, name="entry", plot=False)
            self.exit = self.I(lambda: exits, name="exit", plot=False)

        def next(self) -> None:
            if self.position:
                if self.exit[-1]:
                    self.position.close()
            elif self.entry[-1] and not self.exit[-1]:
                if stop_loss_pct is None:
                    self.buy(size=FRACTION)
                    return
                if len(self.data) == len(opens):
                    return  # a signal on the last candle never fills
                fill = opens[len(self.data)]  # the next candle's open
                self.buy(size=FRACTION, sl=fill * (1 - stop_loss_pct / 100) * FRACTIONAL_UNIT)

    opens = frame["Open"].to_numpy()
    strategy = SmaCross if entries is None else GivenSignals

    def run() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            backtest = FractionalBacktest(
                frame, strategy, cash=CAPITAL, commission=FEE, trade_on_close=False, finalize_trades=True
            )
            return backtest.run()

    seconds, stats = timed(run, repeats)
    trades = stats["_trades"]
    return Outcome(
        "backtesting.py",
        seconds,
        int(stats["# Trades"]),
        float(stats["Equity Final [$]"]),
        [int(i) for i in trades["EntryBar"]],
        [int(i) for i in trades["ExitBar"]],
    )


def vectorbt_run(frame: Any, entries: BoolArray | None, exits: BoolArray | None, repeats: int) -> Outcome:
    """vectorbt with precomputed signals, or (both None) with its own MA crossover indicators."""
    import vectorbt as vbt  # noqa: PLC0415

    close, open_ = frame["Close"], frame["Open"]

    def shifted(signal: Any) -> Any:
        out = np.zeros(len(frame), dtype=np.bool_)
        out[1:] = np.asarray(signal, dtype=np.bool_)[:-1]  # known at the close, acted on at the next open
        return out

    def run() -> tuple[int, float, Any]:
        if entries is None or exits is None:
            fast = vbt.MA.run(close, FAST)
            slow = vbt.MA.run(close, SLOW)
            enter, leave = fast.ma_crossed_above(slow).to_numpy(), fast.ma_crossed_below(slow).to_numpy()
        else:
            enter, leave = entries, exits
        portfolio = vbt.Portfolio.from_signals(
            close=close,
            entries=shifted(enter),
            exits=shifted(leave),
            price=open_,
            fees=FEE,
            size=FRACTION,
            size_type="percent",
            init_cash=CAPITAL,
            freq="5min",
        )
        return int(portfolio.trades.count()), float(portfolio.final_value()), portfolio

    run()  # warm-up: numba compiles here
    seconds, (trades, final, portfolio) = timed(run, repeats)
    records = portfolio.trades.records  # one row per trade; a trade still open ends at the last candle
    return Outcome("vectorbt", seconds, trades, final, records["entry_idx"].tolist(), records["exit_idx"].tolist())


def synthetic_candles(n: int, seed: int = 7) -> Candles:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.empty(n)
    open_[0] = 30_000.0
    open_[1:] = close[:-1]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.001, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 0.001, n)))
    time_ms = 1_600_000_000_000 + 60_000 * np.arange(n, dtype=np.int64)
    return Candles(time_ms, open_, high, low, close, rng.random(n))


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def check(self, ok: bool, what: str) -> None:
        print(f"  {'PASS' if ok else 'FAIL'}  {what}")
        self.failed += not ok


def print_round(title: str, outcomes: list[Outcome]) -> None:
    ours = outcomes[0]
    print(f"\n{title}")
    print(f"  {'engine':<16}{'time':>12}{'vs ours':>10}{'trades':>8}{'final equity':>15}")
    for o in outcomes:
        print(
            f"  {o.engine:<16}{o.seconds * 1000:>10.2f}ms{o.seconds / ours.seconds:>9.1f}x"
            f"{o.trades:>8}{o.final_equity:>15.2f}"
        )


def compare(checks: Checks, label: str, ours: Outcome, peer: Outcome, min_speedup: float) -> None:
    gap = abs(ours.final_equity / peer.final_equity - 1)
    speedup = peer.seconds / ours.seconds
    checks.check(
        ours.trades == peer.trades, f"{label}: as many trades as {peer.engine} ({ours.trades} vs {peer.trades})"
    )
    same = sum(
        (a, b) == (c, d)
        for a, b, c, d in zip(ours.entry_bars, ours.exit_bars, peer.entry_bars, peer.exit_bars, strict=False)
    )
    checks.check(
        same == ours.trades == peer.trades,
        f"{label}: the same entry and exit candles as {peer.engine} ({same} of {ours.trades} trades identical)",
    )
    checks.check(
        gap <= EQUITY_TOLERANCE,
        f"{label}: final equity within {EQUITY_TOLERANCE:.1%} of {peer.engine} ({gap:.4%} apart)",
    )
    target = f">= {min_speedup:g}x" if min_speedup > 1 else "faster than"
    checks.check(speedup >= min_speedup, f"{label}: {target} {peer.engine} ({speedup:.1f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=5, help="runs per engine (backtesting.py: at most 3)")
    args = parser.parse_args(argv)

    candles = load_candles(args.data)
    signals = get_strategy("sma-crossover", {"fast": FAST, "slow": SLOW}).signals(candles)
    entries, exits = np.asarray(signals.entries), np.asarray(signals.exits)
    versions = {"numpy": np.__version__}
    print(f"data: {args.data} ({len(candles):,} candles), sma-crossover {FAST}/{SLOW}, fee {FEE:g}/side")

    checks = Checks()
    rounds: list[tuple[str, list[Outcome]]] = [
        ("engine (same precomputed signals)", [ours_engine(candles, entries, exits, args.repeats)]),
        ("end to end (each engine computes its own SMA crossover)", [ours_end_to_end(candles, args.repeats)]),
        (
            f"engine with a {STOP_LOSS_PCT:g}% stop loss (same precomputed signals)",
            [ours_engine(candles, entries, exits, args.repeats, stop_loss_pct=STOP_LOSS_PCT)],
        ),
    ]
    try:
        import backtesting  # noqa: PLC0415
        import pandas as pd  # noqa: PLC0415

        versions |= {"pandas": pd.__version__, "backtesting": backtesting.__version__}
        frame = to_frame(candles)
        bt_repeats = min(args.repeats, 3)
        rounds[0][1].append(backtesting_py(frame, entries, exits, bt_repeats))
        rounds[1][1].append(backtesting_py(frame, None, None, bt_repeats))
        rounds[2][1].append(backtesting_py(frame, entries, exits, bt_repeats, stop_loss_pct=STOP_LOSS_PCT))
    except ImportError as exc:
        print(f"backtesting.py unavailable ({exc}); install it with: .venv/bin/pip install backtesting pandas")
        checks.failed += 1
        frame = None
    try:
        if frame is None:
            raise ImportError("pandas missing")
        import vectorbt as vbt  # noqa: PLC0415

        versions["vectorbt"] = vbt.__version__
        rounds[0][1].append(vectorbt_run(frame, entries, exits, args.repeats))
        rounds[1][1].append(vectorbt_run(frame, None, None, args.repeats))
    except Exception as exc:  # a peer that fails to import or run is reported, not fatal
        print(f"vectorbt unavailable or failed ({type(exc).__name__}: {exc}); continuing without it")

    for title, outcomes in rounds:
        print_round(title, outcomes)
        ours = outcomes[0]
        for peer in outcomes[1:]:
            minimum = MIN_SPEEDUP_VS_BACKTESTING if peer.engine == "backtesting.py" else 1.0
            compare(checks, title.split(" (")[0], ours, peer, minimum)

    big = synthetic_candles(SYNTHETIC_CANDLES)
    strategy = get_strategy("sma-crossover", {"fast": FAST, "slow": SLOW})
    big_signals = strategy.signals(big)
    seconds_engine, result = timed(
        lambda: run_backtest(big, big_signals.entries, big_signals.exits, our_config()), args.repeats
    )
    seconds_total, _ = timed(
        lambda: run_backtest(big, *_pair(strategy.signals(big)), our_config()), max(1, args.repeats // 2)
    )
    stop_config = our_config().model_copy(update={"stop_loss_pct": 1.0})
    seconds_stops, stopped = timed(
        lambda: run_backtest(big, big_signals.entries, big_signals.exits, stop_config), args.repeats
    )
    # The slow path on purpose: dense random entries, no exit signals, 1 % stop and 1 % target, so tens of
    # thousands of short trades each run through the per-trade loop.
    dense = np.random.default_rng(1).random(len(big)) < 0.05
    bracket = our_config().model_copy(update={"stop_loss_pct": 1.0, "take_profit_pct": 1.0})
    seconds_dense, dense_result = timed(
        lambda: run_backtest(big, dense, np.zeros(len(big), dtype=np.bool_), bracket), max(1, args.repeats // 2)
    )
    print(f"\n{SYNTHETIC_CANDLES:,} synthetic 1m candles (seeded random walk), ours")
    print(f"  backtest:                 {seconds_engine * 1000:8.1f}ms  ({result.metrics.trades:,} trades)")
    print(f"  signals + backtest:       {seconds_total * 1000:8.1f}ms")
    print(f"  backtest, 1% stop loss:   {seconds_stops * 1000:8.1f}ms  ({stopped.metrics.trades:,} trades)")
    print(
        f"  dense random entries, 1% stop + 1% target: {seconds_dense * 1000:8.1f}ms  "
        f"({dense_result.metrics.trades:,} trades, the per-trade loop's worst case)"
    )
    checks.check(seconds_engine < SYNTHETIC_BUDGET_S, f"1M candles backtested in under {SYNTHETIC_BUDGET_S:g}s")
    checks.check(seconds_total < SYNTHETIC_BUDGET_S, f"1M candles, signals + backtest, under {SYNTHETIC_BUDGET_S:g}s")

    print("\nversions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + f", python {sys.version.split()[0]}")
    print("all targets met" if not checks.failed else f"{checks.failed} target(s) missed")
    return 1 if checks.failed else 0


def _pair(signals: Any) -> tuple[BoolArray, BoolArray]:
    return signals.entries, signals.exits


if __name__ == "__main__":
    raise SystemExit(main())

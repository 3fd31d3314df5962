"""The vectorised backtester against a deliberately simple per-candle loop of the same documented semantics.

The reference below walks candle by candle the way a trader would describe it; if the vectorised code
ever disagrees (a trade boundary, a stop, a fee, an equity value), these tests say where.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from traiding.domain import backtest
from traiding.domain.backtest import BacktestConfig, run_backtest
from traiding.domain.candles import Candles


@dataclass
class RefTrade:
    entry_index: int
    exit_index: int
    entry_price: float
    exit_price: float
    qty: float
    pnl: float
    fees: float
    reason: str


def reference_backtest(
    candles: Candles, entries: np.ndarray, exits: np.ndarray, config: BacktestConfig
) -> tuple[list[RefTrade], list[float]]:
    n = len(candles)
    fee, slip = config.fee_rate, config.slippage
    cash = config.initial_capital
    qty = 0.0
    entry_index = -1
    entry_price = entry_fee = 0.0
    pending_entry = pending_exit = False
    trades: list[RefTrade] = []
    equity: list[float] = []

    def close(i: int, price: float, reason: str) -> None:
        nonlocal cash, qty
        exit_fee = qty * price * fee
        cash += qty * price - exit_fee
        pnl = qty * price - exit_fee - (qty * entry_price + entry_fee)
        trades.append(RefTrade(entry_index, i, entry_price, price, qty, pnl, entry_fee + exit_fee, reason))
        qty = 0.0

    for i in range(n):
        o, h, low, c = candles.open[i], candles.high[i], candles.low[i], candles.close[i]
        # 1. orders from the previous close fill at this open
        if pending_exit:
            close(i, o * (1 - slip), "signal")
        if pending_entry:
            equity_now = cash
            budget = equity_now * config.position_fraction
            entry_price = o * (1 + slip)
            qty = budget / (entry_price * (1 + fee))
            entry_fee = qty * entry_price * fee
            cash -= qty * entry_price + entry_fee
            entry_index = i
        pending_entry = pending_exit = False
        # 2. intrabar stop loss, then take profit
        if qty > 0 and config.stop_loss_pct is not None:
            stop = entry_price * (1 - config.stop_loss_pct / 100)
            if low <= stop:
                close(i, min(o, stop) * (1 - slip), "stop_loss")
        if qty > 0 and config.take_profit_pct is not None:
            target = entry_price * (1 + config.take_profit_pct / 100)
            if h >= target:
                close(i, max(o, target) * (1 - slip), "take_profit")
        # 3. the end of the data closes what is open
        if i == n - 1 and qty > 0:
            close(i, c * (1 - slip), "end_of_data")
        equity.append(cash + qty * c)
        # 4. signals at this close, acted on at the next open
        if i < n - 1:
            if qty > 0 and exits[i]:
                pending_exit = True
            elif qty == 0 and entries[i] and not exits[i]:
                pending_entry = True
    return trades, equity


def random_candles(rng: np.random.Generator, n: int, gaps: bool = False) -> Candles:
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    # Opens jump away from the previous close now and then, so gaps through stops happen.
    open_[1:] = close[:-1] * np.exp(rng.normal(0, 0.004, n - 1) * (rng.random(n - 1) < 0.2))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    step = np.full(n, 300_000, dtype=np.int64)
    if gaps:
        step[rng.choice(n, size=max(1, n // 50), replace=False)] *= rng.integers(2, 40)
    time = 1_600_000_000_000 + np.cumsum(step)
    return Candles(time, open_, high, low, close, rng.random(n) * 10)


CONFIGS = [
    BacktestConfig(),
    BacktestConfig(fee_rate=0.0, slippage=0.0),
    BacktestConfig(fee_rate=0.002, slippage=0.0005, position_fraction=0.5),
    BacktestConfig(fee_rate=0.001, stop_loss_pct=1.0),
    BacktestConfig(fee_rate=0.001, slippage=0.001, stop_loss_pct=0.8, position_fraction=0.3),
    BacktestConfig(fee_rate=0.00075, take_profit_pct=1.5),
    BacktestConfig(fee_rate=0.001, slippage=0.0002, stop_loss_pct=1.2, take_profit_pct=1.0, position_fraction=0.9),
    BacktestConfig(initial_capital=123.45, fee_rate=0.0, stop_loss_pct=0.3),
]


def assert_same(candles: Candles, entries: np.ndarray, exits: np.ndarray, config: BacktestConfig) -> int:
    ref_trades, ref_equity = reference_backtest(candles, entries, exits, config)
    result = run_backtest(candles, entries, exits, config)
    got = result.trades.records()
    assert [(t.entry_index, t.exit_index, t.exit_reason) for t in got] == [
        (t.entry_index, t.exit_index, t.reason) for t in ref_trades
    ]
    for mine, ref in zip(got, ref_trades, strict=True):
        assert mine.entry_price == pytest.approx(ref.entry_price, rel=1e-12)
        assert mine.exit_price == pytest.approx(ref.exit_price, rel=1e-12)
        assert mine.qty == pytest.approx(ref.qty, rel=1e-9)
        assert mine.pnl == pytest.approx(ref.pnl, rel=1e-9, abs=1e-9 * config.initial_capital)
        assert mine.fees == pytest.approx(ref.fees, rel=1e-9)
        assert mine.entry_time == candles.time[ref.entry_index]
    np.testing.assert_allclose(result.equity, np.array(ref_equity), rtol=1e-9, atol=0)
    assert result.metrics.final_equity == pytest.approx(ref_equity[-1], rel=1e-9)
    return len(got)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(c.model_dump(exclude_defaults=True)))
@pytest.mark.parametrize("seed", range(6))
def test_random_signals_match_the_reference(seed: int, config: BacktestConfig) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 1500))
    candles = random_candles(rng, n, gaps=seed % 2 == 1)
    density = rng.uniform(0.01, 0.3)
    entries = rng.random(n) < density
    exits = rng.random(n) < density
    trades = assert_same(candles, entries, exits, config)
    assert trades > 0  # the case exercised something


def crossover_like_signals(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Entries and exits that alternate, as a crossover's do: a regime switching on and off at random."""
    regime = np.cumsum(rng.random(n) < rng.uniform(0.02, 0.2)) % 2 == 1
    previous = np.concatenate(([False], regime[:-1]))
    return regime & ~previous, ~regime & previous


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(c.model_dump(exclude_defaults=True)))
@pytest.mark.parametrize("seed", range(6))
def test_alternating_signals_match_the_reference(seed: int, config: BacktestConfig) -> None:
    # Alternating signals never re-enter after a stop, so stops and targets take the vectorised path.
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(200, 3000))
    candles = random_candles(rng, n, gaps=seed % 2 == 0)
    entries, exits = crossover_like_signals(rng, n)
    assert assert_same(candles, entries, exits, config) > 0
    if config.stop_loss_pct is not None or config.take_profit_pct is not None:
        plain = backtest._boundaries_from_signals(candles, entries, exits)
        assert backtest._cut_plain_trades(candles, entries, exits, plain, config) is not None


def test_random_dense_entries_with_stops_take_the_per_trade_loop() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    candles = random_candles(rng, n)
    entries, exits = rng.random(n) < 0.2, rng.random(n) < 0.01
    config = BacktestConfig(stop_loss_pct=0.5)
    plain = backtest._boundaries_from_signals(candles, entries, exits)
    assert backtest._cut_plain_trades(candles, entries, exits, plain, config) is None  # re-entries after stops
    assert assert_same(candles, entries, exits, config) > 20


@pytest.mark.parametrize("config", CONFIGS[:4], ids=lambda c: repr(c.model_dump(exclude_defaults=True)))
def test_edge_signals_match_the_reference(config: BacktestConfig) -> None:
    rng = np.random.default_rng(99)
    n = 40
    candles = random_candles(rng, n)
    cases = [
        (np.zeros(n, bool), np.zeros(n, bool)),  # nothing happens
        (np.ones(n, bool), np.zeros(n, bool)),  # always entering: one trade held to the end
        (np.ones(n, bool), np.ones(n, bool)),  # both every candle: the exit wins, never in
        (np.arange(n) == n - 1, np.zeros(n, bool)),  # entry on the last candle never fills
        (np.arange(n) == n - 2, np.zeros(n, bool)),  # fills on the last candle, closed at its close
        (np.arange(n) % 2 == 0, np.arange(n) % 2 == 1),  # alternating every candle
        (np.arange(n) == 0, np.arange(n) == n - 1),  # exit on the last candle: closed at the end
    ]
    for entries, exits in cases:
        assert_same(candles, entries, exits, config)


def test_long_random_walk_with_stops_matches_the_reference() -> None:
    rng = np.random.default_rng(2024)
    n = 20_000
    candles = random_candles(rng, n, gaps=True)
    entries = rng.random(n) < 0.02
    exits = rng.random(n) < 0.01
    config = BacktestConfig(fee_rate=0.001, slippage=0.0003, stop_loss_pct=2.0, position_fraction=0.75)
    assert assert_same(candles, entries, exits, config) > 50

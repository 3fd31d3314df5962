"""The backtester on small hand-computed cases: fills, fees, stops, slippage, gaps, the end of the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from traiding.domain.backtest import BacktestConfig, run_backtest
from traiding.domain.candles import Candles, load_candles
from traiding.domain.strategies import get_strategy

MIN5 = 300_000
T0 = 1_700_000_000_000


def make_candles(
    opens: list[float],
    closes: list[float],
    highs: list[float] | None = None,
    lows: list[float] | None = None,
    times: list[int] | None = None,
) -> Candles:
    o = np.array(opens, dtype=float)
    c = np.array(closes, dtype=float)
    h = np.maximum(o, c) if highs is None else np.array(highs, dtype=float)
    low = np.minimum(o, c) if lows is None else np.array(lows, dtype=float)
    t = np.array(times if times is not None else [T0 + i * MIN5 for i in range(len(o))], dtype=np.int64)
    return Candles(t, o, h, low, c, np.ones(len(o)))


def flags(n: int, *at: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(at)] = True
    return out


def test_a_signal_fills_at_the_next_open_with_fees_on_both_sides() -> None:
    candles = make_candles(opens=[100, 101, 102, 110, 111], closes=[100.5, 101.5, 108, 110.5, 112])
    config = BacktestConfig(initial_capital=1000, fee_rate=0.01)
    result = run_backtest(candles, flags(5, 0), flags(5, 2), config)

    [trade] = result.trades.records()
    assert (trade.entry_index, trade.exit_index, trade.exit_reason) == (1, 3, "signal")
    assert trade.entry_price == 101 and trade.exit_price == 110
    qty = 1000 / (101 * 1.01)  # notional plus fee is the whole equity
    assert trade.qty == pytest.approx(qty)
    assert trade.fees == pytest.approx(qty * 101 * 0.01 + qty * 110 * 0.01)
    final = qty * 110 * 0.99
    assert trade.pnl == pytest.approx(final - 1000)
    assert trade.return_pct == pytest.approx((final / 1000 - 1) * 100)
    assert trade.entry_time == T0 + MIN5 and trade.exit_time == T0 + 3 * MIN5
    # Marked to market at each close: cash 0 plus qty * close while held, cash after the exit.
    np.testing.assert_allclose(result.equity, [1000, qty * 101.5, qty * 108, final, final])
    assert result.metrics.final_equity == pytest.approx(final)
    assert result.metrics.trades == 1


def test_position_fraction_keeps_the_rest_in_cash() -> None:
    candles = make_candles(opens=[10, 10, 20, 20], closes=[10, 12, 20, 20])
    result = run_backtest(
        candles, flags(4, 0), flags(4, 1), BacktestConfig(initial_capital=100, fee_rate=0, position_fraction=0.25)
    )
    [trade] = result.trades.records()
    assert trade.qty == pytest.approx(2.5)  # 25 of 100 at 10
    np.testing.assert_allclose(result.equity, [100, 75 + 2.5 * 12, 75 + 50, 125])


def test_equity_compounds_from_one_trade_into_the_next() -> None:
    candles = make_candles(opens=[10, 10, 20, 20, 20, 40], closes=[10, 10, 20, 20, 20, 40])
    result = run_backtest(candles, flags(6, 0, 3), flags(6, 1, 4), BacktestConfig(initial_capital=100, fee_rate=0))
    first, second = result.trades.records()
    assert first.pnl == pytest.approx(100)  # 10 units from 10 to 20
    assert second.qty == pytest.approx(200 / 20)  # re-enters with the whole 200
    assert second.pnl == pytest.approx(200)
    assert result.metrics.final_equity == pytest.approx(400)


def test_entries_while_in_a_position_and_exits_while_flat_are_ignored() -> None:
    n = 10
    candles = make_candles(opens=list(range(100, 110)), closes=list(range(100, 110)))
    entries = flags(n, 2, 3, 4, 7)
    exits = flags(n, 0, 1, 5, 6)
    trades = run_backtest(candles, entries, exits, BacktestConfig()).trades.records()
    assert [(t.entry_index, t.exit_index, t.exit_reason) for t in trades] == [(3, 6, "signal"), (8, 9, "end_of_data")]


def test_an_exit_on_the_same_candle_as_an_entry_wins() -> None:
    candles = make_candles(opens=[1, 1, 1, 1], closes=[1, 1, 1, 1])
    result = run_backtest(candles, flags(4, 0, 1), flags(4, 0), BacktestConfig())
    assert [(t.entry_index, t.exit_index) for t in result.trades.records()] == [(2, 3)]


def test_an_open_position_closes_at_the_last_close_and_counts_as_a_trade() -> None:
    candles = make_candles(opens=[50, 50, 60], closes=[50, 55, 70])
    config = BacktestConfig(initial_capital=100, fee_rate=0.001, slippage=0.01)
    result = run_backtest(candles, flags(3, 0), flags(3), config)
    [trade] = result.trades.records()
    assert (trade.exit_index, trade.exit_reason) == (2, "end_of_data")
    assert trade.exit_price == pytest.approx(70 * 0.99)  # slippage on the closing sale too
    assert result.metrics.trades == 1
    assert result.equity[-1] == pytest.approx(trade.qty * 70 * 0.99 * 0.999)


def test_signals_on_the_last_candle_never_fill() -> None:
    candles = make_candles(opens=[1, 2, 3], closes=[1, 2, 3])
    result = run_backtest(candles, flags(3, 2), flags(3), BacktestConfig())
    assert len(result.trades) == 0
    np.testing.assert_array_equal(result.equity, [10_000, 10_000, 10_000])


def test_slippage_worsens_both_fills() -> None:
    candles = make_candles(opens=[100, 100, 100, 100], closes=[100, 100, 100, 100])
    result = run_backtest(candles, flags(4, 0), flags(4, 1), BacktestConfig(fee_rate=0, slippage=0.01))
    [trade] = result.trades.records()
    assert trade.entry_price == pytest.approx(101) and trade.exit_price == pytest.approx(99)
    assert trade.pnl < 0


def test_stop_loss_fills_at_the_stop_inside_the_candle() -> None:
    candles = make_candles(opens=[100, 100, 99, 97, 90], closes=[100, 99, 98, 96, 91], lows=[100, 99, 97.9, 95, 89])
    config = BacktestConfig(initial_capital=1000, fee_rate=0, stop_loss_pct=2)
    result = run_backtest(candles, flags(5, 0), flags(5), config)
    [trade] = result.trades.records()
    # stop at 98; candle 2's low 97.9 reaches it, and it opened at 99 above the stop
    assert (trade.exit_index, trade.exit_reason) == (2, "stop_loss")
    assert trade.exit_price == pytest.approx(98)
    assert trade.pnl == pytest.approx(-20)
    assert result.equity[2] == pytest.approx(980) and result.equity[-1] == pytest.approx(980)


def test_stop_loss_gapped_through_fills_at_the_open() -> None:
    candles = make_candles(opens=[100, 100, 99, 95, 95], closes=[100, 99, 99, 96, 95], lows=[100, 98.5, 98.5, 94, 95])
    config = BacktestConfig(initial_capital=1000, fee_rate=0, stop_loss_pct=1, slippage=0.0)
    [trade] = run_backtest(candles, flags(5, 0), flags(5), config).trades.records()
    # stop at 99 is hit on candle 1 (low 98.5)... at the stop price, the open 100 being above it
    assert trade.exit_index == 1 and trade.exit_price == pytest.approx(99)

    config = BacktestConfig(initial_capital=1000, fee_rate=0, stop_loss_pct=3)
    [trade] = run_backtest(candles, flags(5, 0), flags(5), config).trades.records()
    # stop at 97: candles 1-2 stay above, candle 3 opens at 95, below it -> filled at that open
    assert (trade.exit_index, trade.exit_reason) == (3, "stop_loss") and trade.exit_price == pytest.approx(95)


def test_take_profit_and_the_pessimistic_order_when_both_are_hit() -> None:
    candles = make_candles(
        opens=[100, 100, 101, 103], closes=[100, 101, 102, 103], highs=[100, 101, 106, 104], lows=[100, 99, 94, 102]
    )
    tp_only = BacktestConfig(fee_rate=0, take_profit_pct=5)
    [trade] = run_backtest(candles, flags(4, 0), flags(4), tp_only).trades.records()
    assert (trade.exit_index, trade.exit_reason) == (2, "take_profit") and trade.exit_price == pytest.approx(105)
    both = BacktestConfig(fee_rate=0, take_profit_pct=5, stop_loss_pct=5)
    [trade] = run_backtest(candles, flags(4, 0), flags(4), both).trades.records()
    assert (trade.exit_index, trade.exit_reason) == (2, "stop_loss") and trade.exit_price == pytest.approx(95)


@pytest.mark.parametrize("hit_at", [1, 63, 64, 65, 575, 576, 577, 4999])
def test_a_stop_or_target_far_into_a_long_trade_is_found_on_its_exact_candle(hit_at: int) -> None:
    n = 5000
    flat = [100.0] * n
    lows = list(flat)
    lows[hit_at] = 90.0
    candles = make_candles(opens=flat, closes=flat, lows=lows)
    [trade] = run_backtest(candles, flags(n, 0), flags(n), BacktestConfig(stop_loss_pct=5)).trades.records()
    assert (trade.exit_index, trade.exit_reason) == (hit_at, "stop_loss")
    highs = list(flat)
    highs[hit_at] = 110.0
    candles = make_candles(opens=flat, closes=flat, highs=highs)
    config = BacktestConfig(stop_loss_pct=5, take_profit_pct=5)
    [trade] = run_backtest(candles, flags(n, 0), flags(n), config).trades.records()
    assert (trade.exit_index, trade.exit_reason) == (hit_at, "take_profit")


def test_an_exit_signal_fills_at_the_open_before_that_candles_stop() -> None:
    candles = make_candles(opens=[100, 100, 100, 99], closes=[100, 100, 100, 99], lows=[100, 100, 100, 80])
    config = BacktestConfig(fee_rate=0, stop_loss_pct=5)
    [trade] = run_backtest(candles, flags(4, 0), flags(4, 2), config).trades.records()
    assert (trade.exit_index, trade.exit_reason, trade.exit_price) == (3, "signal", 99)


def test_after_a_stop_an_entry_on_the_stop_candles_close_re_enters() -> None:
    candles = make_candles(opens=[100, 100, 90, 91, 92], closes=[100, 95, 91, 92, 93], lows=[100, 94, 90, 91, 92])
    config = BacktestConfig(fee_rate=0, stop_loss_pct=5)
    trades = run_backtest(candles, flags(5, 0, 1), flags(5), config).trades.records()
    assert [(t.entry_index, t.exit_index, t.exit_reason) for t in trades] == [
        (1, 1, "stop_loss"),
        (2, 4, "end_of_data"),
    ]


def test_a_gap_in_the_data_is_not_interpolated_the_fill_is_the_next_candle_present() -> None:
    times = [T0, T0 + MIN5, T0 + 60 * MIN5, T0 + 61 * MIN5]  # 4h55m missing after candle 1
    candles = make_candles(opens=[100, 100, 130, 131], closes=[100, 100, 131, 132], times=times)
    result = run_backtest(candles, flags(4, 1), flags(4), BacktestConfig(fee_rate=0))
    [trade] = result.trades.records()
    assert trade.entry_time == T0 + 60 * MIN5 and trade.entry_price == 130
    assert result.equity.shape == (4,)  # one value per candle present, nothing invented


def test_no_candles_or_one_candle_means_no_trades() -> None:
    empty = make_candles(opens=[], closes=[])
    result = run_backtest(empty, [], [], BacktestConfig())
    assert len(result.trades) == 0 and result.equity.shape == (0,)
    assert result.metrics.final_equity == 10_000
    one = make_candles(opens=[5], closes=[6])
    assert len(run_backtest(one, [True], [False]).trades) == 0


def test_signal_arrays_must_match_the_candles() -> None:
    candles = make_candles(opens=[1, 2, 3], closes=[1, 2, 3])
    with pytest.raises(ValueError, match="one value per candle"):
        run_backtest(candles, [True, False], [False, False, False])


def test_candles_out_of_order_are_refused() -> None:
    candles = make_candles(opens=[1, 2, 3], closes=[1, 2, 3], times=[T0, T0 + 2 * MIN5, T0 + MIN5])
    with pytest.raises(ValueError, match="ascending"):
        run_backtest(candles, [True, False, False], [False, False, False])
    duplicated = make_candles(opens=[1, 2, 3], closes=[1, 2, 3], times=[T0, T0, T0 + MIN5])
    with pytest.raises(ValueError, match="duplicates"):
        run_backtest(duplicated, [True, False, False], [False, False, False])


def test_config_rejects_nonsense_and_is_frozen() -> None:
    for bad in (
        {"fee_rate": -0.1},
        {"position_fraction": 0},
        {"position_fraction": 1.5},
        {"stop_loss_pct": 0},
        {"x": 1},
    ):
        with pytest.raises(ValidationError):
            BacktestConfig(**bad)
    config = BacktestConfig()
    with pytest.raises(ValidationError):
        config.fee_rate = 0.5  # type: ignore[misc]


def test_sma_crossover_on_real_btc_candles(shared_data: Path) -> None:
    candles = load_candles(shared_data / "BTC_USDT-5m.json")
    signals = get_strategy("sma-crossover", {"fast": 20, "slow": 50}).signals(candles)
    result = run_backtest(candles, signals.entries, signals.exits, BacktestConfig())
    trades = result.trades
    assert len(trades) > 100
    # Every fill is a candle's open (or the last close), and the trades never overlap.
    signal_exits = trades.exit_reason_code == 0
    np.testing.assert_array_equal(trades.entry_price, candles.open[trades.entry_index])
    np.testing.assert_array_equal(trades.exit_price[signal_exits], candles.open[trades.exit_index[signal_exits]])
    assert (trades.entry_index[1:] > trades.exit_index[:-1]).all()
    # No trade enters before its signal could be known: each entry candle follows an entry signal.
    assert signals.entries[trades.entry_index - 1].all()
    assert result.metrics.final_equity == pytest.approx(result.equity[-1])
    json.dumps(result.metrics.model_dump(), allow_nan=False)

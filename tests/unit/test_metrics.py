"""Metrics against small cases computed by hand (statistics module, plain arithmetic)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field

import numpy as np
import pytest

from traiding.domain.metrics import YEAR_MS, BacktestMetrics, compute_metrics

HOUR = 3_600_000
T0 = 1_700_000_000_000


@dataclass
class FakeTrades:
    pnl: np.ndarray = field(default_factory=lambda: np.empty(0))
    return_pct: np.ndarray = field(default_factory=lambda: np.empty(0))
    entry_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    exit_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    fees: np.ndarray = field(default_factory=lambda: np.empty(0))


def hourly(n: int) -> np.ndarray:
    return T0 + HOUR * np.arange(n, dtype=np.int64)


def metrics_of(
    equity: list[float], trades: FakeTrades | None = None, times: np.ndarray | None = None
) -> BacktestMetrics:
    """Metrics of a few hourly candles, annualised however short (these tests check the formulas)."""
    eq = np.array(equity, dtype=float)
    times = hourly(len(eq)) if times is None else times
    return compute_metrics(times, eq, trades or FakeTrades(), eq[0], min_annualised_span_ms=0)


def test_returns_sharpe_sortino_and_drawdown_by_hand() -> None:
    m = metrics_of([100, 110, 99, 121])
    returns = [0.1, -0.1, 121 / 99 - 1]
    per_year = 365 * 24  # hourly candles
    assert m.sharpe == pytest.approx(statistics.mean(returns) / statistics.stdev(returns) * math.sqrt(per_year))
    downside = math.sqrt((0.1**2) / 3)  # only -0.1 is below zero, averaged over all three returns
    assert m.sortino == pytest.approx(statistics.mean(returns) / downside * math.sqrt(per_year))
    assert m.total_return_pct == pytest.approx(21)
    assert m.final_equity == 121
    assert m.max_drawdown_pct == pytest.approx(10)  # 110 -> 99
    assert m.max_drawdown_duration_candles == 2  # peak at candle 1, back above it at candle 3
    assert m.max_drawdown_duration_s == 2 * 3600
    assert m.candle_period_s == 3600
    years = 4 * HOUR / YEAR_MS  # from the first open to the last close
    assert m.cagr_pct == pytest.approx((1.21 ** (1 / years) - 1) * 100)
    assert m.start_time == T0 and m.end_time == T0 + 3 * HOUR


def test_cagr_and_calmar_over_a_year() -> None:
    n = 365  # daily candles over one year: the span from the first open to the last close is 365 days
    times = T0 + 24 * HOUR * np.arange(n, dtype=np.int64)
    equity = np.linspace(100, 200, n)
    equity[100] = 80  # a dip: peak before is ~127.5
    m = compute_metrics(times, equity, FakeTrades(), 100.0)  # a year: long enough to annualise
    assert m.cagr_pct == pytest.approx(100)
    assert 365 * 24 * HOUR == YEAR_MS
    peak = equity[99]
    assert m.max_drawdown_pct == pytest.approx((1 - 80 / peak) * 100)
    assert m.calmar == pytest.approx(100 / m.max_drawdown_pct)


def test_a_drawdown_never_recovered_lasts_until_the_last_candle() -> None:
    m = metrics_of([100, 120, 90, 100, 110, 119])
    assert m.max_drawdown_pct == pytest.approx(25)
    assert m.max_drawdown_duration_candles == 4
    assert m.max_drawdown_duration_s == 4 * 3600


def test_the_longest_drawdown_is_chosen_by_time_not_depth() -> None:
    # A deep one-candle dip, then a shallow one lasting three candles.
    m = metrics_of([100, 50, 100, 99, 98, 97, 101])
    assert m.max_drawdown_pct == pytest.approx(50)
    assert m.max_drawdown_duration_candles == 4  # candle 2 (peak) to candle 6 (recovery)


def test_drawdown_duration_counts_the_time_of_a_gap() -> None:
    times = np.array([T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 30 * HOUR, T0 + 31 * HOUR], dtype=np.int64)
    m = metrics_of([100, 90, 95, 100, 100], times=times)
    assert m.candle_period_s == 3600  # the median spacing, not fooled by the gap
    assert m.max_drawdown_duration_candles == 3
    assert m.max_drawdown_duration_s == 30 * 3600


def test_trade_statistics() -> None:
    trades = FakeTrades(
        pnl=np.array([30.0, -10.0, 20.0, -20.0]),
        return_pct=np.array([3.0, -1.0, 2.0, -2.0]),
        entry_index=np.array([1, 4, 6, 9]),
        exit_index=np.array([2, 5, 8, 9]),
        fees=np.array([1.0, 1.0, 1.0, 1.0]),
    )
    m = metrics_of([100.0] * 10, trades)
    assert (m.trades, m.wins, m.losses) == (4, 2, 2)
    assert m.win_rate == pytest.approx(0.5)
    assert m.profit_factor == pytest.approx(50 / 30)
    assert m.expectancy == pytest.approx(5)
    assert m.avg_trade_pct == pytest.approx(0.5)
    assert (m.best_trade_pct, m.worst_trade_pct) == (3.0, -2.0)
    assert m.exposure_pct == pytest.approx((2 + 2 + 3 + 1) / 10 * 100)
    assert m.total_fees == 4


def test_no_losing_trade_has_no_profit_factor() -> None:
    trades = FakeTrades(
        pnl=np.array([5.0]),
        return_pct=np.array([5.0]),
        entry_index=np.array([1]),
        exit_index=np.array([2]),
        fees=np.array([0.0]),
    )
    m = metrics_of([100, 100, 105], trades)
    assert m.profit_factor is None
    assert m.win_rate == 1.0


def test_no_trades_and_constant_equity_give_nulls_not_nan() -> None:
    m = metrics_of([100.0] * 50)
    assert m.trades == 0
    assert m.win_rate is None and m.profit_factor is None and m.expectancy is None
    assert m.best_trade_pct is None and m.avg_trade_pct is None
    assert m.sharpe is None and m.sortino is None and m.calmar is None
    assert m.max_drawdown_pct == 0 and m.max_drawdown_duration_s == 0
    assert m.exposure_pct == 0 and m.total_return_pct == 0 and m.cagr_pct == 0
    text = json.dumps(m.model_dump(), allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text)["sharpe"] is None


def test_only_gains_have_no_sortino_and_an_explosive_cagr_is_null() -> None:
    m = metrics_of([100, 200, 300, 800])  # 8x in three hours annualises beyond any float
    assert m.sortino is None
    assert m.cagr_pct is None
    assert m.sharpe is not None
    json.dumps(m.model_dump(), allow_nan=False)


def test_tiny_inputs() -> None:
    empty = compute_metrics(np.empty(0, dtype=np.int64), np.empty(0), FakeTrades(), 1000.0)
    assert empty.final_equity == 1000 and empty.candles == 0 and empty.start_time is None
    one = metrics_of([100])
    assert one.cagr_pct is None and one.sharpe is None and one.max_drawdown_pct == 0


def test_annualised_figures_of_a_short_period_are_not_meaningful_and_say_why() -> None:
    rng = np.random.default_rng(5)
    six_hours = np.asarray(
        100 * np.cumprod(1 + rng.normal(0.001, 0.002, 72)), dtype=np.float64
    )  # a 6h session of 5m candles, rising
    times = T0 + 300_000 * np.arange(72, dtype=np.int64)
    short = compute_metrics(times, six_hours, FakeTrades(), 100.0)
    assert short.sharpe is short.sortino is short.cagr_pct is short.calmar is None
    assert short.annualised_note == "not meaningful over 6h: annualising needs at least 7d of candles"
    assert set(short.notes()) == {"cagr_pct", "sharpe", "sortino", "calmar"}
    assert short.total_return_pct == pytest.approx((six_hours[-1] / 100 - 1) * 100)  # not annualised: reported
    # The same formulas over a week (2016 five-minute candles) give numbers.
    week = np.asarray(100 * np.cumprod(1 + rng.normal(0.0001, 0.002, 2016)), dtype=np.float64)
    weekly = compute_metrics(T0 + 300_000 * np.arange(2016, dtype=np.int64), week, FakeTrades(), 100.0)
    assert weekly.sharpe is not None and weekly.cagr_pct is not None and weekly.annualised_note is None
    assert weekly.notes() == {}


def test_market_change_is_buy_and_hold_over_the_same_candles() -> None:
    close = np.array([200.0, 180.0, 250.0])
    m = compute_metrics(hourly(3), np.full(3, 100.0), FakeTrades(), 100.0, close=close)
    assert m.market_change_pct == pytest.approx(25)
    assert metrics_of([100, 101]).market_change_pct is None  # no prices given


def test_gate_values_are_the_numeric_metrics_by_name() -> None:
    values = metrics_of([100, 110, 99, 121]).gate_values()
    assert values["max_drawdown_pct"] == pytest.approx(10)
    assert values["trades"] == 0.0 and values["win_rate"] is None

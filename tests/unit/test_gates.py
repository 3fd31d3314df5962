"""Gates: pass/fail per threshold, margins, and messages a trader can act on."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from traiding.domain.gates import GateThreshold, UnknownMetricError, evaluate_gates
from traiding.errors import UserError

MIN_SHARPE = GateThreshold(name="minSharpe", metric="sharpe", comparison=">=", threshold=0.5)
MIN_TRADES = GateThreshold(name="minTrades", metric="trades", comparison=">=", threshold=20)
MAX_DD = GateThreshold(name="maxDrawdownPct", metric="max_drawdown_pct", comparison="<=", threshold=25)


def test_a_minimum_missed_says_by_how_much() -> None:
    report = evaluate_gates({"sharpe": 0.31}, [MIN_SHARPE])
    assert not report.passed
    [result] = report.results
    assert result.message == "sharpe 0.31 below the minimum 0.50 (short by 0.19)"
    assert result.actual == 0.31 and result.threshold == 0.5
    assert result.margin == pytest.approx(-0.19)
    assert (result.name, result.metric, result.comparison) == ("minSharpe", "sharpe", ">=")


def test_a_maximum_exceeded_says_by_how_much() -> None:
    [result] = evaluate_gates({"max_drawdown_pct": 31.2}, [MAX_DD]).results
    assert not result.passed
    assert result.message == "max_drawdown_pct 31.20 above the maximum 25 (over by 6.20)"
    assert result.margin == pytest.approx(-6.2)


def test_passing_gates_report_their_room_to_spare() -> None:
    report = evaluate_gates({"sharpe": 1.2, "trades": 35.0, "max_drawdown_pct": 12.0}, [MIN_SHARPE, MIN_TRADES, MAX_DD])
    assert report.passed and report.failures == ()
    assert [r.margin for r in report.results] == [pytest.approx(0.7), 15.0, 13.0]
    assert report.results[1].message == "trades 35 meets the minimum 20 (by 15)"
    assert report.results[2].message == "max_drawdown_pct 12 within the maximum 25 (by 13)"
    assert report.summary() == "all 3 gates passed"


def test_exactly_at_the_threshold_passes_on_both_sides() -> None:
    report = evaluate_gates({"sharpe": 0.5, "max_drawdown_pct": 25.0}, [MIN_SHARPE, MAX_DD])
    assert report.passed
    assert all(r.margin == 0 for r in report.results)


def test_every_gate_is_checked_and_the_summary_lists_each_failure() -> None:
    report = evaluate_gates({"sharpe": 0.1, "trades": 3.0, "max_drawdown_pct": 40.0}, [MIN_SHARPE, MIN_TRADES, MAX_DD])
    assert not report.passed
    assert [r.name for r in report.failures] == ["minSharpe", "minTrades", "maxDrawdownPct"]
    assert "trades 3 below the minimum 20 (short by 17)" in report.summary()
    assert report.summary().count(";") == 2


def test_an_undefined_metric_fails_its_gate_with_a_reason() -> None:
    for value in (None, math.nan, math.inf):
        [result] = evaluate_gates({"sharpe": value}, [MIN_SHARPE]).results
        assert not result.passed and result.actual is None and result.margin is None
        assert result.message.startswith("sharpe is not available")
        assert "minimum 0.50" in result.message
    # Where the reason is known (a period too short to annualise), the message gives it.
    notes = {"sharpe": "not meaningful over 6h: annualised figures need at least 7d of candles"}
    [result] = evaluate_gates({"sharpe": None}, [MIN_SHARPE], notes).results
    assert result.message == (
        "sharpe is not meaningful over 6h: annualised figures need at least 7d of candles, "
        "so the minimum 0.50 cannot be met"
    )


def test_a_gate_on_an_unknown_metric_is_a_user_error_naming_the_known_ones() -> None:
    gate = GateThreshold(name="minSharp", metric="sharp", comparison=">=", threshold=1)
    with pytest.raises(UnknownMetricError, match=r"unknown metric 'sharp'; known: sharpe, trades") as info:
        evaluate_gates({"trades": 1.0, "sharpe": 1.0}, [gate])
    assert isinstance(info.value, UserError)


def test_no_gates_pass_and_thresholds_are_validated() -> None:
    assert evaluate_gates({"sharpe": 0.0}, []).passed
    with pytest.raises(ValidationError):
        GateThreshold.model_validate({"name": "x", "metric": "sharpe", "comparison": ">", "threshold": 1})
    with pytest.raises(ValidationError):
        GateThreshold(name="x", metric="sharpe", comparison=">=", threshold=math.nan)


def test_small_numbers_keep_their_significant_digits() -> None:
    gate = GateThreshold(name="minAvgTrade", metric="avg_trade_pct", comparison=">=", threshold=0.05)
    [result] = evaluate_gates({"avg_trade_pct": 0.0123}, [gate]).results
    assert result.message == "avg_trade_pct 0.0123 below the minimum 0.05 (short by 0.0377)"

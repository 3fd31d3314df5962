"""Risk limits: kill switch on drawdown, daily loss limit per UTC day, position budget, stop price."""

from __future__ import annotations

import pytest

from traiding.domain import risk

LIMITS = risk.RiskLimits(max_position_fraction=0.5, stop_loss_pct=2.0, daily_loss_limit_pct=5.0, max_drawdown_pct=20.0)
DAY = risk.DAY_MS
T0 = 1_700_000_000_000 // DAY * DAY  # midnight UTC


def test_the_kill_switch_trips_at_the_drawdown_limit_from_the_peak() -> None:
    state = risk.RiskState.start(10_000, T0)
    state = risk.observe_equity(LIMITS, state, 12_000, T0 + 1)
    assert state.peak_equity == 12_000
    state = risk.observe_equity(LIMITS, state, 9_700, T0 + 2)  # 19.2% below the peak
    assert not state.killed
    state = risk.observe_equity(LIMITS, state, 9_600, T0 + 3)  # exactly 20%
    assert state.killed
    assert "drawdown 20.00%" in state.kill_reason
    assert risk.entry_block_reason(LIMITS, state, 9_600) == state.kill_reason


def test_a_tripped_kill_switch_stays_tripped_when_equity_recovers() -> None:
    state = risk.observe_equity(LIMITS, risk.RiskState.start(10_000, T0), 7_000, T0 + 1)
    state = risk.observe_equity(LIMITS, state, 11_000, T0 + 2)
    assert state.killed


def test_the_daily_loss_limit_blocks_entries_until_the_next_utc_day() -> None:
    state = risk.RiskState.start(10_000, T0)
    state = risk.observe_equity(LIMITS, state, 9_480, T0 + 3_600_000)
    reason = risk.entry_block_reason(LIMITS, state, 9_480)
    assert reason is not None and "daily loss limit" in reason and "5.20%" in reason
    assert risk.entry_block_reason(LIMITS, state, 9_600) is None  # 4% down: allowed
    next_day = risk.observe_equity(LIMITS, state, 9_480, T0 + DAY + 1)
    assert next_day.day_start_equity == 9_480
    assert risk.entry_block_reason(LIMITS, next_day, 9_480) is None


def test_position_budget_is_a_fraction_of_equity_never_more_than_is_free() -> None:
    assert risk.position_budget(LIMITS, 10_000, 8_000) == 5_000
    assert risk.position_budget(LIMITS, 10_000, 3_000) == 3_000
    assert risk.position_budget(LIMITS, 10_000, -5) == 0


def test_stop_price_sits_below_the_entry() -> None:
    assert risk.stop_price(LIMITS, 100.0) == pytest.approx(98.0)
    no_stop = risk.RiskLimits(1.0, None, 5.0, 20.0)
    assert risk.stop_price(no_stop, 100.0) is None


def test_state_round_trips_through_the_checkpoint() -> None:
    state = risk.observe_equity(LIMITS, risk.RiskState.start(10_000, T0), 7_000, T0 + 1)
    assert risk.RiskState.from_dict(state.to_dict()) == state

"""Every transition of the TradingRun lifecycle, and every illegal one refused."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from traiding.domain.statemachine import (
    ALLOWED,
    TERMINAL,
    WORK_PHASES,
    Approval,
    Exit,
    IllegalTransition,
    Observations,
    Outcome,
    OutcomeKind,
    Phase,
    RunSettings,
    RunState,
    check_transition,
    decide,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DRY = RunSettings(live=False, max_attempts=3)
LIVE = RunSettings(live=True, max_attempts=3)

EXPECTED_FORWARD = {
    (Phase.PENDING, Phase.DATA_CHECK),
    (Phase.DATA_CHECK, Phase.BACKTEST),
    (Phase.BACKTEST, Phase.API_CHECK),
    (Phase.API_CHECK, Phase.AWAITING_APPROVAL),
    (Phase.API_CHECK, Phase.TRADING),
    (Phase.AWAITING_APPROVAL, Phase.TRADING),
    (Phase.TRADING, Phase.REPORTING),
    (Phase.TRADING, Phase.LIQUIDATING),
    (Phase.LIQUIDATING, Phase.REPORTING),
    (Phase.REPORTING, Phase.SUCCEEDED),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(Phase, Phase)))
def test_transition_table_is_exactly_the_lifecycle(source: Phase, target: Phase) -> None:
    legal = (source, target) in EXPECTED_FORWARD or (
        source not in TERMINAL and target in {Phase.FAILED, Phase.CANCELLED}
    )
    if legal:
        check_transition(source, target)
        assert target in ALLOWED[source]
    else:
        with pytest.raises(IllegalTransition, match=f"{source} -> {target} is not allowed"):
            check_transition(source, target)


@pytest.mark.parametrize("phase", sorted(TERMINAL))
def test_a_final_phase_never_changes(phase: Phase) -> None:
    with pytest.raises(IllegalTransition, match="final phase"):
        decide(DRY, RunState(phase), Observations(now=NOW, cancel_requested=True))


def test_pending_starts_with_the_data_check() -> None:
    decision = decide(DRY, RunState(Phase.PENDING), Observations(now=NOW))
    assert decision.phase is Phase.DATA_CHECK
    assert decision.reason == "Started"


@pytest.mark.parametrize(
    ("settings", "phase", "expected"),
    [
        (DRY, Phase.DATA_CHECK, Phase.BACKTEST),
        (DRY, Phase.BACKTEST, Phase.API_CHECK),
        (DRY, Phase.API_CHECK, Phase.TRADING),
        (LIVE, Phase.API_CHECK, Phase.AWAITING_APPROVAL),
        (DRY, Phase.TRADING, Phase.REPORTING),
        (DRY, Phase.REPORTING, Phase.SUCCEEDED),
    ],
)
def test_a_passed_phase_moves_forward(settings: RunSettings, phase: Phase, expected: Phase) -> None:
    outcome = Outcome(phase, OutcomeKind.PASSED, "GatePassed", "ok")
    decision = decide(settings, RunState(phase, NOW), Observations(now=NOW, outcome=outcome))
    assert decision.phase is expected
    assert decision.message == "ok"


def test_dry_runs_never_wait_for_approval() -> None:
    outcome = Outcome(Phase.API_CHECK, OutcomeKind.PASSED, "ApiReady")
    assert decide(DRY, RunState(Phase.API_CHECK), Observations(now=NOW, outcome=outcome)).phase is Phase.TRADING


@pytest.mark.parametrize("phase", [p for p in WORK_PHASES if p is not Phase.LIQUIDATING])
def test_a_failed_gate_fails_the_run_with_its_reason(phase: Phase) -> None:
    outcome = Outcome(phase, OutcomeKind.FAILED, "GateFailed", "sharpe 0.3 below 0.5")
    decision = decide(DRY, RunState(phase, NOW), Observations(now=NOW, outcome=outcome))
    assert (decision.phase, decision.reason, decision.message) == (Phase.FAILED, "GateFailed", "sharpe 0.3 below 0.5")
    assert decision.final


@pytest.mark.parametrize("phase", [p for p in Phase if p not in TERMINAL and p is not Phase.LIQUIDATING])
def test_cancel_wins_over_everything_else(phase: Phase) -> None:
    outcome = Outcome(phase, OutcomeKind.PASSED, "GatePassed")
    decision = decide(DRY, RunState(phase, NOW), Observations(now=NOW, outcome=outcome, cancel_requested=True))
    assert decision.phase is Phase.CANCELLED
    assert str(phase) in decision.message


def test_transient_errors_retry_with_growing_backoff_then_fail() -> None:
    outcome = Outcome(Phase.API_CHECK, OutcomeKind.TRANSIENT, "ExchangeUnavailable", "binance: 503")
    first = decide(DRY, RunState(Phase.API_CHECK, NOW, attempts=0), Observations(now=NOW, outcome=outcome))
    assert (first.phase, first.attempts) == (Phase.API_CHECK, 1)
    assert "attempt 1 of 3" in first.message
    second = decide(DRY, RunState(Phase.API_CHECK, NOW, attempts=1), Observations(now=NOW, outcome=outcome))
    assert first.retry_after is not None and second.retry_after is not None
    assert second.retry_after == 2 * first.retry_after
    last = decide(DRY, RunState(Phase.API_CHECK, NOW, attempts=2), Observations(now=NOW, outcome=outcome))
    assert last.phase is Phase.FAILED
    assert last.reason == "ExchangeUnavailable"
    assert "gave up after 3 attempts" in last.message


def test_backoff_is_capped() -> None:
    settings = RunSettings(live=False, max_attempts=50, backoff_max=timedelta(seconds=30))
    outcome = Outcome(Phase.DATA_CHECK, OutcomeKind.TRANSIENT, "RateLimited")
    decision = decide(settings, RunState(Phase.DATA_CHECK, NOW, attempts=20), Observations(now=NOW, outcome=outcome))
    assert decision.retry_after == timedelta(seconds=30)


def test_progress_of_a_running_session_resets_the_error_count() -> None:
    outcome = Outcome(Phase.TRADING, OutcomeKind.RUNNING, "Trading", "3 trades so far")
    decision = decide(DRY, RunState(Phase.TRADING, NOW, attempts=2), Observations(now=NOW, outcome=outcome))
    assert (decision.phase, decision.attempts, decision.message) == (Phase.TRADING, 0, "3 trades so far")
    assert decision.retry_after is not None


def test_without_an_outcome_for_this_phase_the_work_runs_again() -> None:
    stale = Outcome(Phase.DATA_CHECK, OutcomeKind.PASSED, "GatePassed")
    decision = decide(DRY, RunState(Phase.BACKTEST, NOW), Observations(now=NOW, outcome=stale))
    assert decision.phase is Phase.BACKTEST
    assert decision.retry_after is None


def test_a_phase_that_overruns_its_timeout_fails() -> None:
    settings = RunSettings(live=False, phase_timeouts={Phase.DATA_CHECK: timedelta(minutes=5)})
    started = NOW - timedelta(minutes=6)
    decision = decide(settings, RunState(Phase.DATA_CHECK, started), Observations(now=NOW))
    assert (decision.phase, decision.reason) == (Phase.FAILED, "PhaseTimeout")
    within = decide(settings, RunState(Phase.DATA_CHECK, NOW - timedelta(minutes=4)), Observations(now=NOW))
    assert within.phase is Phase.DATA_CHECK


def _approval(at: datetime, ttl: timedelta) -> Approval:
    return Approval(approved_by="alice@example.com", approved_at=at, expires_at=at + ttl)


def test_a_valid_approval_starts_live_trading_and_names_the_approver() -> None:
    approval = _approval(NOW - timedelta(minutes=1), timedelta(hours=1))
    decision = decide(LIVE, RunState(Phase.AWAITING_APPROVAL, NOW), Observations(now=NOW, approval=approval))
    assert decision.phase is Phase.TRADING
    assert "alice@example.com" in decision.message


def test_without_approval_a_live_run_waits() -> None:
    decision = decide(LIVE, RunState(Phase.AWAITING_APPROVAL, NOW), Observations(now=NOW))
    assert decision.phase is Phase.AWAITING_APPROVAL
    assert decision.retry_after is not None


def test_an_expired_approval_does_not_count() -> None:
    approval = _approval(NOW - timedelta(hours=2), timedelta(hours=1))
    decision = decide(LIVE, RunState(Phase.AWAITING_APPROVAL, NOW), Observations(now=NOW, approval=approval))
    assert decision.phase is Phase.AWAITING_APPROVAL
    assert "expired" in decision.message


def test_an_approval_dated_in_the_future_does_not_count() -> None:
    approval = _approval(NOW + timedelta(minutes=5), timedelta(hours=1))
    decision = decide(LIVE, RunState(Phase.AWAITING_APPROVAL, NOW), Observations(now=NOW, approval=approval))
    assert decision.phase is Phase.AWAITING_APPROVAL


def test_waiting_for_approval_forever_fails() -> None:
    started = NOW - timedelta(days=8)
    decision = decide(LIVE, RunState(Phase.AWAITING_APPROVAL, started), Observations(now=NOW))
    assert (decision.phase, decision.reason) == (Phase.FAILED, "ApprovalTimeout")


def test_a_phase_may_have_its_own_attempt_limit() -> None:
    settings = RunSettings(live=False, max_attempts=3, phase_max_attempts={Phase.TRADING: 10})
    outcome = Outcome(Phase.TRADING, OutcomeKind.TRANSIENT, "ExchangeUnavailable", "503")
    still = decide(settings, RunState(Phase.TRADING, NOW, attempts=5), Observations(now=NOW, outcome=outcome))
    assert (still.phase, still.attempts) == (Phase.TRADING, 6)
    assert "attempt 6 of 10" in still.message
    other = Outcome(Phase.API_CHECK, OutcomeKind.TRANSIENT, "ExchangeUnavailable", "503")
    done = decide(settings, RunState(Phase.API_CHECK, NOW, attempts=2), Observations(now=NOW, outcome=other))
    assert done.phase is Phase.FAILED


# --- Liquidating: a run never becomes final while it holds positions ------------------------------------------


def _trading(attempts: int = 0, started: datetime = NOW) -> RunState:
    return RunState(Phase.TRADING, started, attempts)


def _liquidating(exit_phase: Phase = Phase.FAILED, attempts: int = 0) -> RunState:
    return RunState(Phase.LIQUIDATING, NOW, attempts, Exit(exit_phase, "GateFailed", "why it left trading"))


def test_a_session_that_ends_holding_positions_liquidates_then_reports() -> None:
    ended = Outcome(Phase.TRADING, OutcomeKind.PASSED, "SessionEnded", "session finished")
    decision = decide(DRY, _trading(), Observations(now=NOW, outcome=ended, holds_positions=True))
    assert decision.phase is Phase.LIQUIDATING
    assert decision.exit == Exit(Phase.REPORTING, "SessionEnded", "session finished")
    flat = Outcome(Phase.LIQUIDATING, OutcomeKind.PASSED, "Liquidated", "open positions closed")
    state = RunState(Phase.LIQUIDATING, NOW, 0, decision.exit)
    after = decide(DRY, state, Observations(now=NOW, outcome=flat))
    assert (after.phase, after.reason) == (Phase.REPORTING, "SessionEnded")
    assert after.message == "session finished; open positions closed"


@pytest.mark.parametrize(
    ("observations", "target", "reason"),
    [
        (
            {"outcome": Outcome(Phase.TRADING, OutcomeKind.FAILED, "AuthenticationFailed", "key revoked")},
            Phase.FAILED,
            "AuthenticationFailed",
        ),
        ({"cancel_requested": True}, Phase.CANCELLED, "Cancelled"),
        ({"deleting": True}, Phase.CANCELLED, "Deleted"),
        ({"now": NOW + timedelta(hours=2)}, Phase.FAILED, "PhaseTimeout"),
    ],
)
def test_leaving_trading_while_holding_positions_goes_through_liquidating(
    observations: dict[str, object], target: Phase, reason: str
) -> None:
    settings = RunSettings(live=False, phase_timeouts={Phase.TRADING: timedelta(hours=1)})
    seen = Observations(**{"now": NOW, **observations, "holds_positions": True})  # type: ignore[arg-type]
    decision = decide(settings, _trading(), seen)
    assert decision.phase is Phase.LIQUIDATING
    assert decision.exit is not None and (decision.exit.phase, decision.exit.reason) == (target, reason)
    assert decision.reason == reason
    flat = decide(settings, RunState(Phase.TRADING, NOW), Observations(**{"now": NOW, **observations}))  # type: ignore[arg-type]
    assert (flat.phase, flat.reason) == (target, reason)  # nothing held: straight to where it was going


def test_a_timeout_names_the_phase_and_its_deadline() -> None:
    settings = RunSettings(live=False, phase_timeouts={Phase.BACKTEST: timedelta(minutes=15)})
    decision = decide(settings, RunState(Phase.BACKTEST, NOW - timedelta(minutes=16)), Observations(now=NOW))
    assert (decision.phase, decision.reason) == (Phase.FAILED, "PhaseTimeout")
    assert decision.message == "Backtest did not finish within its deadline of 0:15:00"


def test_a_session_out_of_attempts_while_holding_positions_liquidates() -> None:
    outcome = Outcome(Phase.TRADING, OutcomeKind.TRANSIENT, "ExchangeUnavailable", "503")
    decision = decide(DRY, _trading(attempts=2), Observations(now=NOW, outcome=outcome, holds_positions=True))
    assert decision.phase is Phase.LIQUIDATING
    assert decision.exit is not None and decision.exit.phase is Phase.FAILED
    assert "gave up after 3 attempts" in decision.exit.message


@pytest.mark.parametrize("kind", [OutcomeKind.TRANSIENT, OutcomeKind.FAILED])
def test_a_refused_exit_is_retried_with_capped_backoff_forever(kind: OutcomeKind) -> None:
    outcome = Outcome(Phase.LIQUIDATING, kind, "ExitRefused", "insufficient balance")
    decision = decide(DRY, _liquidating(attempts=500), Observations(now=NOW + timedelta(days=30), outcome=outcome))
    assert (decision.phase, decision.attempts) == (Phase.LIQUIDATING, 501)
    assert decision.retry_after == DRY.backoff_max
    assert decision.exit is not None and decision.exit.phase is Phase.FAILED
    assert "exit attempt 501" in decision.message


def test_liquidating_waits_while_an_order_may_still_appear() -> None:
    outcome = Outcome(Phase.LIQUIDATING, OutcomeKind.RUNNING, "WaitingForOrders", "waiting for t1")
    decision = decide(DRY, _liquidating(attempts=3), Observations(now=NOW, outcome=outcome))
    assert (decision.phase, decision.attempts, decision.message) == (Phase.LIQUIDATING, 0, "waiting for t1")
    assert decision.retry_after == DRY.backoff_base


def test_a_flat_liquidation_goes_where_the_session_was_headed() -> None:
    flat = Outcome(Phase.LIQUIDATING, OutcomeKind.PASSED, "Liquidated", "open positions closed")
    decision = decide(DRY, _liquidating(Phase.FAILED), Observations(now=NOW, outcome=flat))
    assert (decision.phase, decision.reason) == (Phase.FAILED, "GateFailed")
    assert decision.message == "why it left trading; open positions closed"


def test_cancelling_a_liquidation_on_its_way_to_reporting_cancels_the_run_once_flat() -> None:
    seen = Observations(now=NOW, cancel_requested=True)
    decision = decide(DRY, _liquidating(Phase.REPORTING), seen)
    assert decision.phase is Phase.LIQUIDATING  # it keeps closing: cancelling does not abandon positions
    assert decision.exit is not None and (decision.exit.phase, decision.exit.reason) == (Phase.CANCELLED, "Cancelled")
    failing = decide(DRY, _liquidating(Phase.FAILED), seen)
    assert failing.exit is not None and failing.exit.phase is Phase.FAILED  # a failure stays a failure


def test_a_liquidation_has_no_deadline() -> None:
    settings = RunSettings(live=False, phase_timeouts={Phase.TRADING: timedelta(minutes=1)})
    state = RunState(Phase.LIQUIDATING, NOW - timedelta(days=3), 0, Exit(Phase.REPORTING, "SessionEnded", ""))
    assert decide(settings, state, Observations(now=NOW)).phase is Phase.LIQUIDATING


def test_deleting_with_leave_positions_ends_at_once_and_says_so() -> None:
    seen = Observations(now=NOW, deleting=True, leave_positions=True, holds_positions=True)
    decision = decide(DRY, _trading(), seen)
    assert (decision.phase, decision.reason) == (Phase.CANCELLED, "Deleted")
    assert "positions left open" in decision.message
    liquidating = decide(DRY, _liquidating(Phase.REPORTING), seen)
    assert liquidating.phase is Phase.CANCELLED and "positions left open" in liquidating.message


@pytest.mark.parametrize("kind", list(OutcomeKind))
@pytest.mark.parametrize(
    "flags", [{}, {"cancel_requested": True}, {"deleting": True}, {"now": NOW + timedelta(days=9)}]
)
@pytest.mark.parametrize("phase", [Phase.TRADING, Phase.LIQUIDATING])
def test_a_run_holding_positions_never_becomes_final(phase: Phase, flags: dict[str, object], kind: OutcomeKind) -> None:
    settings = RunSettings(live=False, max_attempts=1, phase_timeouts={Phase.TRADING: timedelta(days=1)})
    state = RunState(phase, NOW, 5, Exit(Phase.FAILED, "X", "y") if phase is Phase.LIQUIDATING else None)
    outcome = Outcome(phase, kind, "Reason", "message")
    seen = Observations(**{"now": NOW, "outcome": outcome, **flags, "holds_positions": True})  # type: ignore[arg-type]
    decision = decide(settings, state, seen)
    if phase is Phase.LIQUIDATING and kind is OutcomeKind.PASSED:
        assert decision.final  # the liquidation itself reports that nothing is held any more
    else:
        assert not decision.final, decision

"""Status changes the operator makes itself: failing a run it cannot start, noting spec changes."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from traiding.domain.statemachine import Decision, IllegalTransition, Phase
from traiding.pipeline.wiring import wait_after
from traiding.resource import PhaseRecord, TradingRunStatus
from traiding_operator.config import OperatorConfig
from traiding_operator.driver import initial_status, is_final
from traiding_operator.run_status import SPEC_CONDITION, fail_status, note_spec_generation

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_failing_a_pending_run_sets_phase_reason_and_ready_false() -> None:
    failed = fail_status(TradingRunStatus(), NOW, "CredentialsUnavailable", "Secret x not found", 1)
    assert (failed.phase, failed.reason, failed.message) == ("Failed", "CredentialsUnavailable", "Secret x not found")
    assert (failed.startedAt, failed.finishedAt, failed.observedGeneration) == (NOW, NOW, 1)
    [ready] = failed.conditions
    assert (ready.type, ready.status, ready.reason) == ("Ready", "False", "CredentialsUnavailable")


def test_failing_mid_run_marks_the_current_phase_failed() -> None:
    status = TradingRunStatus(phase="Trading", phases={"Trading": PhaseRecord(state="Running", startedAt=NOW)})
    failed = fail_status(status, NOW + timedelta(minutes=1), "CredentialsUnavailable", "gone", 1)
    record = failed.phases["Trading"]
    assert (record.state, record.finishedAt, record.message) == ("Failed", NOW + timedelta(minutes=1), "gone")
    assert status.phase == "Trading"  # the input is not changed


def test_a_final_run_cannot_be_failed() -> None:
    with pytest.raises(IllegalTransition):
        fail_status(TradingRunStatus(phase="Succeeded"), NOW, "X", "y", 1)


def test_a_spec_change_after_the_start_is_reported_not_applied() -> None:
    status = TradingRunStatus(observedGeneration=1)
    note_spec_generation(status, 1, NOW)
    assert [(c.type, c.status) for c in status.conditions] == [(SPEC_CONDITION, "True")]
    note_spec_generation(status, 2, NOW + timedelta(seconds=5))
    [condition] = status.conditions
    assert (condition.status, condition.reason) == ("False", "ChangedAfterStart")
    assert "spec generation 2 is not applied" in condition.message and "generation 1" in condition.message
    assert condition.lastTransitionTime == NOW + timedelta(seconds=5)


def test_a_new_status_gets_the_run_uid_the_spec_and_the_generation() -> None:
    status = initial_status(None, "0a1b2c3d-4e5f-6789-abcd-ef0123456789", 3, {"mode": "dry-run"})
    assert status.checkpoint["runUid"] == "0a1b2c3d4e5f"
    assert status.checkpoint["spec"] == {"mode": "dry-run"}
    assert status.observedGeneration == 3
    # An existing status keeps what it started with.
    again = initial_status(status.model_dump(mode="json"), "other-uid", 4, {"mode": "live"})
    assert (again.checkpoint["runUid"], again.checkpoint["spec"], again.observedGeneration) == (
        "0a1b2c3d4e5f",
        {"mode": "dry-run"},
        3,
    )


@pytest.mark.parametrize(("phase", "final"), [("Succeeded", True), ("Cancelled", True), ("Trading", False)])
def test_is_final(phase: str, final: bool) -> None:
    assert is_final({"phase": phase}) is final


def test_is_final_without_a_status() -> None:
    assert is_final({}) is False


def test_waits_between_steps() -> None:
    trading = Decision(Phase.TRADING, "Trading", "", retry_after=timedelta(seconds=2))
    assert wait_after(trading, 0.5) == 0.5
    retry = Decision(Phase.DATA_CHECK, "NetworkError", "", attempts=2, retry_after=timedelta(seconds=4))
    assert wait_after(retry, 0.5) == 4.0
    assert wait_after(Decision(Phase.BACKTEST, "Passed", ""), 0.5) == 0.0


def test_config_from_the_environment() -> None:
    env = {
        "TRAIDING_SIMULATOR_URL": "http://sim:8080",
        "TRAIDING_CACHE_DIR": "/cache",
        "TRAIDING_OPERATOR_IDENTITY": "pod-a",
    }
    assert OperatorConfig.from_env(env) == OperatorConfig("http://sim:8080", Path("/cache"), "pod-a")
    assert OperatorConfig.from_env({}).simulator_url is None


def test_two_processes_never_share_a_default_identity() -> None:
    first, second = OperatorConfig.from_env({}).identity, OperatorConfig.from_env({}).identity
    assert first != second and first.startswith(socket.gethostname())

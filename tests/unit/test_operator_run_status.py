"""Status changes the operator makes itself: failing a run it cannot start, noting spec changes."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from traiding.domain.statemachine import Decision, IllegalTransition, Phase
from traiding.errors import UserError
from traiding.pipeline.wiring import wait_after
from traiding.resource import PhaseRecord, TradingRunStatus
from traiding.settings import EndpointNotAllowed, load_settings
from traiding_operator.config import OperatorSettings
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


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIDING_SIMULATORS", '{"default": "http://sim:8080", "eu-sim": "http://10.0.0.7:8080"}')
    monkeypatch.setenv("TRAIDING_EXCHANGES", '["binance", "kraken"]')
    monkeypatch.setenv("TRAIDING_CACHE_DIR", "/cache")
    monkeypatch.setenv("TRAIDING_OPERATOR_IDENTITY", "pod-a")
    settings = load_settings(OperatorSettings)
    assert (settings.cache_dir, settings.operator_identity) == (Path("/cache"), "pod-a")
    assert settings.simulator_url(None) == "http://sim:8080/"
    assert settings.simulator_url("eu-sim") == "http://10.0.0.7:8080/"
    settings.check_exchange("kraken")


def test_an_endpoint_outside_the_allowlist_is_refused_naming_what_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIDING_SIMULATORS", '{"default": "http://sim:8080"}')
    settings = load_settings(OperatorSettings)
    with pytest.raises(EndpointNotAllowed) as info:
        settings.simulator_url("attacker")
    assert info.value.reason == "SimulatorNotAllowed"
    assert "'attacker' is not a simulator this installation allows (configured: default" in str(info.value)
    with pytest.raises(EndpointNotAllowed) as info:
        settings.check_exchange("kraken")
    assert info.value.reason == "ExchangeNotAllowed" and "(allowed: binance; TRAIDING_EXCHANGES)" in str(info.value)
    monkeypatch.delenv("TRAIDING_SIMULATORS")
    with pytest.raises(EndpointNotAllowed) as info:
        load_settings(OperatorSettings).simulator_url(None)
    assert info.value.reason == "SimulatorNotConfigured"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("TRAIDING_SIMULATORS", '{"Bad Name": "http://x"}', "TRAIDING_SIMULATORS['Bad Name']"),
        ("TRAIDING_SIMULATORS", '{"sim": "not a url"}', "TRAIDING_SIMULATORS['sim']: Input should be a valid URL"),
        ("TRAIDING_SIMULATORS", "http://sim:8080", "TRAIDING_SIMULATORS: not valid JSON"),
        ("TRAIDING_METRICS_PORT", "70000", "TRAIDING_METRICS_PORT: Input should be less than or equal to 65535"),
        ("TRAIDING_KILL_SWITCH_POLL_SECONDS", "0", "TRAIDING_KILL_SWITCH_POLL_SECONDS"),
        ("TRAIDING_KEYS_SECRET", "traiding-keys", "TRAIDING_KEYS_SECRET needs TRAIDING_OPERATOR_NAMESPACE"),
        ("TRAIDING_REQUIRE_ENCRYPTED_KEYS", "true", "TRAIDING_REQUIRE_ENCRYPTED_KEYS needs TRAIDING_KEYS_SECRET"),
    ],
)
def test_a_bad_setting_is_refused_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError) as info:
        load_settings(OperatorSettings)
    assert named in str(info.value)


def test_two_processes_never_share_a_default_identity() -> None:
    first, second = OperatorSettings().operator_identity, OperatorSettings().operator_identity
    assert first != second and first.startswith(socket.gethostname())

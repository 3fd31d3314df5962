"""Approval and cancel annotations, and when an approval counts: at the gate, for its time to live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from traiding_operator.annotations import APPROVED_BY, CANCEL, approver, cancel_requested, parse_time
from traiding_operator.run_status import (
    APPROVAL_SEEN_KEY,
    approval_before_gate,
    current_approval,
    note_approval_at_gate,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("True", True), (" yes ", True), ("false", False)])
def test_cancel_annotation(value: str, expected: bool) -> None:
    assert cancel_requested({CANCEL: value}) is expected


def test_no_cancel_annotation_means_no_cancel() -> None:
    assert cancel_requested({}) is False


def test_no_or_blank_approver_is_no_approval() -> None:
    assert approver({}) is None
    assert approver({APPROVED_BY: "  "}) is None
    assert approver({APPROVED_BY: " alice "}) == "alice"


def test_a_time_without_zone_counts_as_utc() -> None:
    assert parse_time("2026-11-27T11:00:00") == datetime(2026, 11, 27, 11, 0, tzinfo=UTC)


def test_an_approval_counts_from_when_the_operator_first_saw_it() -> None:
    checkpoint: dict[str, Any] = {}
    first = current_approval({APPROVED_BY: "alice"}, checkpoint, NOW, "2h")
    assert first is not None
    assert (first.approved_by, first.approved_at, first.expires_at) == ("alice", NOW, NOW + timedelta(hours=2))
    # Seen again later (or by a restarted operator, which reads the checkpoint): the clock does not restart.
    later = current_approval({APPROVED_BY: "alice"}, checkpoint, NOW + timedelta(hours=1), "2h")
    assert later is not None and later.expires_at == NOW + timedelta(hours=2)


def test_a_different_approver_starts_a_new_approval() -> None:
    checkpoint: dict[str, Any] = {}
    current_approval({APPROVED_BY: "alice"}, checkpoint, NOW, "2h")
    bob = current_approval({APPROVED_BY: "bob"}, checkpoint, NOW + timedelta(hours=3), "2h")
    assert bob is not None and bob.expires_at == NOW + timedelta(hours=5)


def test_removing_the_annotation_withdraws_the_approval() -> None:
    checkpoint: dict[str, Any] = {}
    current_approval({APPROVED_BY: "alice"}, checkpoint, NOW, "2h")
    assert current_approval({}, checkpoint, NOW, "2h") is None
    assert APPROVAL_SEEN_KEY not in checkpoint


def test_an_approval_on_the_run_before_its_gate_never_counts_until_given_again() -> None:
    checkpoint: dict[str, Any] = {APPROVAL_SEEN_KEY: {"approvedBy": "mallory", "firstSeenAt": NOW.isoformat()}}
    note_approval_at_gate(checkpoint, {APPROVED_BY: "mallory"})  # e.g. written into run.yaml
    assert approval_before_gate(checkpoint) == "mallory" and APPROVAL_SEEN_KEY not in checkpoint
    assert current_approval({APPROVED_BY: "mallory"}, checkpoint, NOW, "2h") is None
    assert current_approval({APPROVED_BY: "mallory"}, checkpoint, NOW + timedelta(hours=1), "2h") is None
    # Removed, then given at the gate: it counts from then.
    assert current_approval({}, checkpoint, NOW + timedelta(hours=1), "2h") is None
    again = current_approval({APPROVED_BY: "mallory"}, checkpoint, NOW + timedelta(hours=2), "2h")
    assert again is not None and again.approved_at == NOW + timedelta(hours=2)


def test_another_approver_at_the_gate_counts_although_an_early_one_was_there() -> None:
    checkpoint: dict[str, Any] = {}
    note_approval_at_gate(checkpoint, {APPROVED_BY: "mallory"})
    alice = current_approval({APPROVED_BY: "alice"}, checkpoint, NOW, "2h")
    assert alice is not None and alice.approved_by == "alice"


def test_a_run_reaching_its_gate_without_an_approval_records_none() -> None:
    checkpoint: dict[str, Any] = {}
    note_approval_at_gate(checkpoint, {CANCEL: "false"})
    assert approval_before_gate(checkpoint) is None

"""Approval and cancel annotations, and how long an approval counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from traiding_operator.annotations import (
    APPROVED_AT,
    APPROVED_BY,
    CANCEL,
    ApprovalRequest,
    approval_request,
    cancel_requested,
    parse_time,
)
from traiding_operator.run_status import APPROVAL_SEEN_KEY, current_approval

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("True", True), (" yes ", True), ("false", False)])
def test_cancel_annotation(value: str, expected: bool) -> None:
    assert cancel_requested({CANCEL: value}) is expected


def test_no_cancel_annotation_means_no_cancel() -> None:
    assert cancel_requested({}) is False


def test_no_or_blank_approver_is_no_approval() -> None:
    assert approval_request({}) is None
    assert approval_request({APPROVED_BY: "  "}) is None


def test_approval_with_and_without_a_stated_time() -> None:
    assert approval_request({APPROVED_BY: "alice"}) == ApprovalRequest("alice", None)
    stated = approval_request({APPROVED_BY: "alice", APPROVED_AT: "2026-11-27T11:00:00Z"})
    assert stated == ApprovalRequest("alice", datetime(2026, 11, 27, 11, 0, tzinfo=UTC))


def test_an_unparseable_approved_at_is_ignored() -> None:
    assert approval_request({APPROVED_BY: "alice", APPROVED_AT: "yesterday"}) == ApprovalRequest("alice", None)


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


def test_the_stated_approval_time_is_recorded_unless_it_is_in_the_future() -> None:
    past = {APPROVED_BY: "alice", APPROVED_AT: "2026-11-27T11:30:00Z"}
    approval = current_approval(past, {}, NOW, "2h")
    assert approval is not None and approval.approved_at == datetime(2026, 11, 27, 11, 30, tzinfo=UTC)
    future = {APPROVED_BY: "alice", APPROVED_AT: "2026-11-28T00:00:00Z"}
    approval = current_approval(future, {}, NOW, "2h")
    assert approval is not None and approval.approved_at == NOW

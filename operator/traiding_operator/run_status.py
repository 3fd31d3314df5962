"""Status changes the operator makes itself, outside a phase's work: failing a run it cannot start
(an endpoint it may not use, a kill switch), ending a run deleted before it traded, saying that driving a run
keeps failing, noting a spec change it does not apply, and tracking approvals at the gate. Pure functions over
`TradingRunStatus` and its checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from traiding.domain.statemachine import Approval, Phase, check_transition
from traiding.pipeline.wiring import approval_of
from traiding.resource import Condition, TradingRunStatus
from traiding_operator.annotations import approver, parse_time

SPEC_CONDITION = "SpecApplied"
APPROVAL_SEEN_KEY = "approvalSeen"  # checkpoint entry: who approved and when the operator first saw it
APPROVAL_BEFORE_GATE_KEY = "approvalBeforeGate"  # checkpoint entry: who had "approved" before the gate


def fail_status(
    status: TradingRunStatus, now: datetime, reason: str, message: str, generation: int | None
) -> TradingRunStatus:
    """The run failed in its current phase for a reason outside the phase's work; a copy of the status."""
    return _end_status(status, now, Phase.FAILED, reason, message, generation=generation)


def stop_status(status: TradingRunStatus, now: datetime, reason: str, message: str) -> TradingRunStatus:
    """The run is cancelled (deleted) in a phase that holds nothing; a copy of the status."""
    return _end_status(status, now, Phase.CANCELLED, reason, message, generation=status.observedGeneration)


def note_operator_trouble(status: TradingRunStatus, now: datetime, message: str) -> TradingRunStatus:
    """Say on a run that holds positions why it is not progressing; it stays in its phase and is retried."""
    status = status.model_copy(deep=True)
    status.reason, status.message = "OperatorError", message
    status.set_condition(
        Condition(
            type="Progressing",
            status="False",
            reason="OperatorError",
            message=message,
            lastTransitionTime=now,
            observedGeneration=status.observedGeneration,
        )
    )
    return status


def _end_status(
    status: TradingRunStatus, now: datetime, target: Phase, reason: str, message: str, *, generation: int | None
) -> TradingRunStatus:
    status = status.model_copy(deep=True)
    phase = Phase(status.phase)
    check_transition(phase, target)
    record = status.phases.get(phase)
    if record is not None:
        record.state, record.finishedAt, record.message = target.value, now, message  # type: ignore[assignment]
    status.phase, status.reason, status.message = target.value, reason, message
    status.observedGeneration = generation
    status.startedAt = status.startedAt or now
    status.finishedAt = now
    status.set_condition(
        Condition(
            type="Ready",
            status="False",
            reason=reason,
            message=message,
            lastTransitionTime=now,
            observedGeneration=generation,
        ),
    )
    return status


def note_spec_generation(status: TradingRunStatus, generation: int | None, now: datetime) -> None:
    """Say in a condition whether the object's spec is the one the run uses (the one it started with)."""
    started = status.observedGeneration
    if generation is None or started is None:
        return
    if generation == started:
        condition = Condition(
            type=SPEC_CONDITION,
            status="True",
            reason="AsStarted",
            message=f"the run uses spec generation {started}",
            lastTransitionTime=now,
            observedGeneration=started,
        )
    else:
        condition = Condition(
            type=SPEC_CONDITION,
            status="False",
            reason="ChangedAfterStart",
            message=(
                f"spec generation {generation} is not applied: a run keeps the spec of generation {started} it "
                "started with; create a new TradingRun to run the changed spec"
            ),
            lastTransitionTime=now,
            observedGeneration=started,
        )
    status.set_condition(condition)


def note_approval_at_gate(checkpoint: dict[str, Any], annotations: Mapping[str, str]) -> None:
    """The run has just reached its approval gate: an approval already on it then was given before the gates
    passed, so it never counts (until it is removed and given again)."""
    early = approver(annotations)
    if early:
        checkpoint[APPROVAL_BEFORE_GATE_KEY] = early
    checkpoint.pop(APPROVAL_SEEN_KEY, None)


def approval_before_gate(checkpoint: dict[str, Any]) -> str | None:
    early = checkpoint.get(APPROVAL_BEFORE_GATE_KEY)
    return str(early) if early else None


def current_approval(
    annotations: Mapping[str, str], checkpoint: dict[str, Any], now: datetime, ttl: str
) -> Approval | None:
    """The approval on the object, valid for `ttl` from when the operator first saw it at the gate.

    The first-seen time is kept in the checkpoint so an operator restart does not extend an approval; it is the
    approval's time (a time the approver states could not be checked). An approval that was on the run before
    it reached its gate does not count.
    """
    approved_by = approver(annotations)
    if approved_by is None:
        checkpoint.pop(APPROVAL_SEEN_KEY, None)
        checkpoint.pop(APPROVAL_BEFORE_GATE_KEY, None)  # withdrawn: a new approval may follow
        return None
    if approved_by == approval_before_gate(checkpoint):
        return None
    checkpoint.pop(APPROVAL_BEFORE_GATE_KEY, None)
    seen = checkpoint.get(APPROVAL_SEEN_KEY)
    first_seen = parse_time(str(seen.get("firstSeenAt", ""))) if isinstance(seen, dict) else None
    if first_seen is None or not isinstance(seen, dict) or seen.get("approvedBy") != approved_by:
        first_seen = now
        checkpoint[APPROVAL_SEEN_KEY] = {"approvedBy": approved_by, "firstSeenAt": now.isoformat()}
    return approval_of(approved_by, first_seen, first_seen, ttl)

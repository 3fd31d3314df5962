"""One step of a run: do the current phase's work, ask the state machine what follows, update the status.

`advance` is the whole contract between the pipeline and its two drivers: `traiding run` calls it in
a loop in one process; the operator calls it once per reconcile and patches the returned status.
Everything a later step needs lives in that status (phase records, checkpoint), never in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from traiding.domain.statemachine import (
    TERMINAL,
    Approval,
    Decision,
    Exit,
    Observations,
    Outcome,
    OutcomeKind,
    Phase,
    RunSettings,
    RunState,
    decide,
    timeout_message,
)
from traiding.domain.timeframes import duration_timedelta
from traiding.pipeline.api_check import run_api_check
from traiding.pipeline.backtest_phase import run_backtest_phase
from traiding.pipeline.context import CheckWork, Flush, PhaseResult, PhaseWork, RunContext, outcome_of_error
from traiding.pipeline.data_check import run_data_check
from traiding.pipeline.events import EventLog, Level
from traiding.pipeline.reporting import run_reporting
from traiding.pipeline.session import describe_holdings, holds_positions, liquidation_step, trading_step
from traiding.resource import (
    ApprovalRecord,
    Condition,
    OnDelete,
    PhaseRecord,
    Summary,
    TradingRunSpec,
    TradingRunStatus,
)

# How a driver persists the status mid-step (operator: a status write guarded by the resourceVersion the
# step read; `traiding run`: status.json replaced atomically). It raises when the write did not happen.
Persist = Callable[[TradingRunStatus], Awaitable[None]]
LIQUIDATION_KEY = "liquidation"  # checkpoint entry: where a liquidating run goes once flat, and why


def _ignoring_flush(work: CheckWork) -> PhaseWork:
    async def run(ctx: RunContext, checkpoint: dict[str, Any], _flush: Flush) -> PhaseResult:
        return await work(ctx, checkpoint)

    return run


PHASE_WORK: dict[Phase, PhaseWork] = {
    Phase.DATA_CHECK: _ignoring_flush(run_data_check),
    Phase.BACKTEST: _ignoring_flush(run_backtest_phase),
    Phase.API_CHECK: _ignoring_flush(run_api_check),
    Phase.TRADING: trading_step,
    Phase.LIQUIDATING: liquidation_step,
    Phase.REPORTING: _ignoring_flush(run_reporting),
}

# Condition set when a phase passes: `kubectl describe` shows how far the run got.
PHASE_CONDITIONS: dict[Phase, str] = {
    Phase.DATA_CHECK: "DataChecked",
    Phase.BACKTEST: "Backtested",
    Phase.API_CHECK: "ApiChecked",
    Phase.AWAITING_APPROVAL: "Approved",
    Phase.TRADING: "Traded",
    Phase.LIQUIDATING: "Liquidated",
}


def phase_deadlines(spec: TradingRunSpec) -> dict[Phase, timedelta]:
    """`spec.timeouts` per phase; Trading's default is the session's market time x 1.1 plus room for outages."""
    timeouts = spec.timeouts
    session = duration_timedelta(spec.session.duration)
    trading = duration_timedelta(timeouts.trading) if timeouts.trading else session * 1.1 + timedelta(minutes=15)
    return {
        Phase.DATA_CHECK: duration_timedelta(timeouts.dataCheck),
        Phase.BACKTEST: duration_timedelta(timeouts.backtest),
        Phase.API_CHECK: duration_timedelta(timeouts.apiCheck),
        Phase.TRADING: trading,
        Phase.REPORTING: duration_timedelta(timeouts.reporting),
    }


def settings_of(spec: TradingRunSpec) -> RunSettings:
    return RunSettings(
        live=spec.mode.value == "live",
        phase_timeouts=phase_deadlines(spec),
        # With the backoff capped at 2 minutes, about an hour of exchange trouble before a session gives up.
        phase_max_attempts={Phase.TRADING: 35},
    )


async def run_phase_work(
    ctx: RunContext, phase: Phase, checkpoint: dict[str, Any], flush: Flush, deadline: timedelta | None = None
) -> PhaseResult | None:
    """The phase's work, cancelled when it is still running at the phase's deadline (`deadline` from now)."""
    work = PHASE_WORK.get(phase)
    if work is None:
        return None
    limit = asyncio.timeout(deadline.total_seconds() if deadline is not None else None)
    try:
        async with limit:
            return await work(ctx, checkpoint, flush)
    except TimeoutError:
        if not limit.expired():
            raise
        limits = phase_deadlines(ctx.spec)
        return PhaseResult(Outcome(phase, OutcomeKind.FAILED, "PhaseTimeout", timeout_message(phase, limits[phase])))
    except Exception as error:  # exchange and input errors become outcomes; bugs propagate
        return outcome_of_error(phase, error)


def _exit_of(checkpoint: dict[str, Any]) -> Exit | None:
    raw = checkpoint.get(LIQUIDATION_KEY)
    return Exit(Phase(raw["then"]), str(raw["reason"]), str(raw["message"])) if raw else None


def _begin_step(status: TradingRunStatus, now: datetime, generation: int | None) -> TradingRunStatus:
    """A copy of the status to step from, with the run's and the current phase's start recorded."""
    status = status.model_copy(deep=True)
    status.observedGeneration = generation
    phase = Phase(status.phase)
    if phase in TERMINAL:
        raise ValueError(f"run is already {phase}")
    if status.startedAt is None:
        status.startedAt = now
    record = status.phases.get(phase)
    if phase is not Phase.PENDING and (record is None or record.startedAt is None):
        status.phases[phase.value] = PhaseRecord(state="Running", startedAt=now)
    return status


def start(
    spec: TradingRunSpec, events: EventLog, status: TradingRunStatus, now: datetime, *, generation: int | None = None
) -> TradingRunStatus:
    """Pending -> DataCheck (started), without any work: the status a driver writes as soon as it picks a run up,
    so that the run says at once that it is being worked on. `advance` from there does the DataCheck."""
    status = _begin_step(status, now, generation)
    if Phase(status.phase) is not Phase.PENDING:
        return status
    _conclude(spec, events, status, now, outcome=None, cancel_requested=False, deleting=False, approval=None)
    return status


async def advance(
    ctx: RunContext,
    status: TradingRunStatus,
    now: datetime,
    *,
    cancel_requested: bool = False,
    deleting: bool = False,
    approval: Approval | None = None,
    generation: int | None = None,
    persist: Persist | None = None,
) -> tuple[TradingRunStatus, Decision]:
    """Run one step and return the new status (a copy) and the decision taken.

    `persist` writes the status in the middle of the step (before an order is sent); a failure to write
    raises out of here, and the driver continues from the status it reads back. `deleting`: the object is
    being deleted (a cancel that follows `spec.session.onDelete`).
    """
    status = _begin_step(status, now, generation)
    phase = Phase(status.phase)
    record = status.phases.get(phase)
    outcome: Outcome | None = None
    stopping = cancel_requested or deleting
    # A cancelled run does no more phase work, except closing its positions.
    if record is not None and (not stopping or phase is Phase.LIQUIDATING):

        async def flush() -> None:
            if persist is not None:
                await persist(status)  # the checkpoint is the dict the work is changing right now

        limit = settings_of(ctx.spec).phase_timeouts.get(phase)
        remaining = None if limit is None or record.startedAt is None else record.startedAt + limit - now
        if remaining is None or remaining > timedelta(0):
            result = await run_phase_work(ctx, phase, status.checkpoint, flush, remaining)
            if result is not None:
                outcome = result.outcome
                record.results = result.results
                if "summary" in result.results:
                    status.summary = Summary.model_validate(result.results["summary"])
    decision = _conclude(
        ctx.spec,
        ctx.events,
        status,
        now,
        outcome=outcome,
        cancel_requested=cancel_requested,
        deleting=deleting,
        approval=approval,
    )
    return status, decision


def _conclude(
    spec: TradingRunSpec,
    events: EventLog,
    status: TradingRunStatus,
    now: datetime,
    *,
    outcome: Outcome | None,
    cancel_requested: bool,
    deleting: bool,
    approval: Approval | None,
) -> Decision:
    """Ask the state machine what follows what was observed, and apply its decision to `status` (in place)."""
    phase = Phase(status.phase)
    record = status.phases.get(phase)
    state = RunState(
        phase, record.startedAt if record else None, record.attempts if record else 0, _exit_of(status.checkpoint)
    )
    seen = Observations(
        now,
        outcome,
        cancel_requested,
        approval,
        holds_positions=holds_positions(status.checkpoint),
        deleting=deleting,
        leave_positions=spec.session.onDelete is OnDelete.LEAVE_POSITIONS,
    )
    decision = decide(settings_of(spec), state, seen)
    _apply(events, status=status, phase=phase, decision=decision, now=now, approval=approval, outcome=outcome)
    if decision.final and deleting and seen.leave_positions and seen.holds_positions:
        events.emit(
            str(decision.phase),
            "PositionsLeft",
            f"deleted with {describe_holdings(status.checkpoint)} left on the exchange (onDelete: LeavePositions)",
            level="warning",
        )
    return decision


def _apply(
    events: EventLog,
    *,
    status: TradingRunStatus,
    phase: Phase,
    decision: Decision,
    now: datetime,
    approval: Approval | None,
    outcome: Outcome | None,
) -> None:
    record = status.phases.get(phase)
    if record is not None:
        record.attempts = decision.attempts
        record.message = decision.message
    status.reason, status.message = decision.reason, decision.message
    if phase is Phase.LIQUIDATING and decision.phase is phase and decision.attempts > 0:
        # Every refused exit says so on the object: a person may have to act (funds, filters, the exchange).
        status.set_condition(_condition("Liquidated", False, decision, now, status.observedGeneration))
    if decision.exit is not None:
        status.checkpoint[LIQUIDATION_KEY] = {
            "then": decision.exit.phase.value,
            "reason": decision.exit.reason,
            "message": decision.exit.message,
        }
    if decision.phase is phase:
        return

    if record is not None:
        record.finishedAt = now
        record.state = _record_state(phase, decision, outcome)
        condition_type = PHASE_CONDITIONS.get(phase)
        if condition_type is not None:
            status.set_condition(
                _condition(condition_type, record.state == "Passed", decision, now, status.observedGeneration)
            )
    if phase is Phase.AWAITING_APPROVAL and decision.phase is Phase.TRADING and approval is not None:
        status.approval = ApprovalRecord(
            approvedBy=approval.approved_by, approvedAt=approval.approved_at, expiresAt=approval.expires_at
        )
        events.emit(
            Phase.TRADING.value,
            "Approved",
            f"live trading approved by {approval.approved_by} at {approval.approved_at.isoformat()} "
            f"(valid until {approval.expires_at.isoformat()})",
            metrics={"approvedBy": approval.approved_by},
        )
    status.phase = decision.phase.value
    level: Level = (
        "error" if decision.phase is Phase.FAILED else "warning" if decision.phase is Phase.LIQUIDATING else "info"
    )
    started = record.startedAt if record is not None else None
    events.emit(
        str(decision.phase),
        "PhaseChanged",
        f"{phase} -> {decision.phase}: {decision.message}",
        level=level,
        metrics={
            "from": phase.value,
            "to": decision.phase.value,
            "reason": decision.reason,
            "durationSeconds": (now - started).total_seconds() if started is not None else None,
        },
    )
    if decision.final:
        status.finishedAt = now
        status.set_condition(
            _condition("Ready", decision.phase is Phase.SUCCEEDED, decision, now, status.observedGeneration)
        )
    else:
        status.phases[decision.phase.value] = PhaseRecord(state="Running", startedAt=now)


def _record_state(phase: Phase, decision: Decision, outcome: Outcome | None) -> Any:
    """How the phase that was left ended: a session left for liquidation ends as its exit says; a liquidation
    that closed everything passed, wherever the run goes then (one left by a deletion was cancelled)."""
    if phase is Phase.LIQUIDATING:
        passed = outcome is not None and outcome.kind is OutcomeKind.PASSED
        return "Passed" if passed else "Cancelled"
    target = decision.exit.phase if decision.exit is not None else decision.phase
    return {Phase.FAILED: "Failed", Phase.CANCELLED: "Cancelled"}.get(target, "Passed")


def _condition(type_: str, ok: bool, decision: Decision, now: datetime, generation: int | None) -> Condition:
    return Condition(
        type=type_,
        status="True" if ok else "False",
        reason=decision.reason,
        message=decision.message,
        lastTransitionTime=now,
        observedGeneration=generation,
    )

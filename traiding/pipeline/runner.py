"""One step of a run: do the current phase's work, ask the state machine what follows, update the status.

`advance` is the whole contract between the pipeline and its two drivers: `traiding run` calls it in
a loop in one process; the operator calls it once per reconcile and patches the returned status.
Everything a later step needs lives in that status (phase records, checkpoint), never in memory.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from traiding.domain.statemachine import (
    TERMINAL,
    Approval,
    Decision,
    Observations,
    Outcome,
    Phase,
    RunSettings,
    RunState,
    decide,
)
from traiding.domain.timeframes import duration_timedelta
from traiding.pipeline.api_check import run_api_check
from traiding.pipeline.backtest_phase import run_backtest_phase
from traiding.pipeline.context import PhaseResult, PhaseWork, RunContext, outcome_of_error
from traiding.pipeline.data_check import run_data_check
from traiding.pipeline.events import Level
from traiding.pipeline.reporting import run_reporting
from traiding.pipeline.session import flatten_session, trading_step
from traiding.resource import ApprovalRecord, Condition, PhaseRecord, Summary, TradingRunSpec, TradingRunStatus

PHASE_WORK: dict[Phase, PhaseWork] = {
    Phase.DATA_CHECK: run_data_check,
    Phase.BACKTEST: run_backtest_phase,
    Phase.API_CHECK: run_api_check,
    Phase.TRADING: trading_step,
    Phase.REPORTING: run_reporting,
}

# Condition set when a phase passes: `kubectl describe` shows how far the run got.
PHASE_CONDITIONS: dict[Phase, str] = {
    Phase.DATA_CHECK: "DataChecked",
    Phase.BACKTEST: "Backtested",
    Phase.API_CHECK: "ApiChecked",
    Phase.AWAITING_APPROVAL: "Approved",
    Phase.TRADING: "Traded",
}


def settings_of(spec: TradingRunSpec) -> RunSettings:
    session = duration_timedelta(spec.session.duration)
    return RunSettings(
        live=spec.mode.value == "live",
        phase_timeouts={
            Phase.DATA_CHECK: timedelta(minutes=15),
            Phase.BACKTEST: timedelta(minutes=15),
            Phase.API_CHECK: timedelta(minutes=10),
            # Session time is market time; on a real exchange that is wall time, plus room for outages.
            Phase.TRADING: session * 1.1 + timedelta(minutes=15),
            Phase.REPORTING: timedelta(minutes=10),
        },
        # With the backoff capped at 2 minutes, about an hour of exchange trouble before a session gives up.
        phase_max_attempts={Phase.TRADING: 35},
    )


async def run_phase_work(ctx: RunContext, phase: Phase, checkpoint: dict[str, Any]) -> PhaseResult | None:
    work = PHASE_WORK.get(phase)
    if work is None:
        return None
    try:
        return await work(ctx, checkpoint)
    except Exception as error:  # exchange and input errors become outcomes; bugs propagate
        return outcome_of_error(phase, error)


async def advance(
    ctx: RunContext,
    status: TradingRunStatus,
    now: datetime,
    *,
    cancel_requested: bool = False,
    approval: Approval | None = None,
    generation: int | None = None,
) -> tuple[TradingRunStatus, Decision]:
    """Run one step and return the new status (a copy) and the decision taken."""
    status = status.model_copy(deep=True)
    status.observedGeneration = generation
    phase = Phase(status.phase)
    if phase in TERMINAL:
        raise ValueError(f"run is already {phase}")
    if status.startedAt is None:
        status.startedAt = now
    record = status.phases.get(phase)
    outcome: Outcome | None = None
    if cancel_requested and phase is Phase.TRADING:
        # A cancelled session first closes its positions; until the exchange lets it, the cancel waits.
        refused = await flatten_session(ctx, status.checkpoint)
        if refused is not None:
            outcome, cancel_requested = refused.outcome, False
    if not cancel_requested and outcome is None:
        if phase is not Phase.PENDING and (record is None or record.startedAt is None):
            record = PhaseRecord(state="Running", startedAt=now)
            status.phases[phase.value] = record
        result = await run_phase_work(ctx, phase, status.checkpoint)
        if result is not None and record is not None:
            outcome = result.outcome
            record.results = result.results
            if "summary" in result.results:
                status.summary = Summary.model_validate(result.results["summary"])

    state = RunState(phase, record.startedAt if record else None, record.attempts if record else 0)
    decision = decide(settings_of(ctx.spec), state, Observations(now, outcome, cancel_requested, approval))
    if phase is Phase.TRADING and decision.phase is Phase.FAILED:
        # A failing session still tries to leave the account flat, and says whether it could.
        refused = await flatten_session(ctx, status.checkpoint)
        closing = "open positions closed" if refused is None else f"positions may be open: {refused.outcome.message}"
        decision = replace(decision, message=f"{decision.message}; {closing}")
        if record is not None and "openPositions" in record.results:
            # What the session holds after its last attempt to close (alerts page on a live run left open).
            record.results["openPositions"] = refused.results.get("openPositions", 0) if refused else 0
    _apply(ctx, status=status, phase=phase, decision=decision, now=now, approval=approval)
    return status, decision


def _apply(
    ctx: RunContext,
    *,
    status: TradingRunStatus,
    phase: Phase,
    decision: Decision,
    now: datetime,
    approval: Approval | None,
) -> None:
    record = status.phases.get(phase)
    if record is not None:
        record.attempts = decision.attempts
        record.message = decision.message
    status.reason, status.message = decision.reason, decision.message
    if decision.phase is phase:
        return

    if record is not None:
        record.finishedAt = now
        record.state = {Phase.FAILED: "Failed", Phase.CANCELLED: "Cancelled"}.get(decision.phase, "Passed")  # type: ignore[assignment]
        condition_type = PHASE_CONDITIONS.get(phase)
        if condition_type is not None:
            ok = record.state == "Passed"
            status.set_condition(
                Condition(
                    type=condition_type,
                    status="True" if ok else "False",
                    reason=decision.reason,
                    message=decision.message,
                    lastTransitionTime=now,
                    observedGeneration=status.observedGeneration,
                ),
            )
    if phase is Phase.AWAITING_APPROVAL and decision.phase is Phase.TRADING and approval is not None:
        status.approval = ApprovalRecord(
            approvedBy=approval.approved_by, approvedAt=approval.approved_at, expiresAt=approval.expires_at
        )
    status.phase = decision.phase.value
    level: Level = "error" if decision.phase is Phase.FAILED else "info"
    started = record.startedAt if record is not None else None
    ctx.events.emit(
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
        succeeded = decision.phase is Phase.SUCCEEDED
        status.set_condition(
            Condition(
                type="Ready",
                status="True" if succeeded else "False",
                reason=decision.reason,
                message=decision.message,
                lastTransitionTime=now,
                observedGeneration=status.observedGeneration,
            ),
        )
    else:
        status.phases[decision.phase.value] = PhaseRecord(state="Running", startedAt=now)

"""The kill switch's effect on a live run that trades: halt it, and keep it halted until a person resumes it.

A driver that sees a kill switch set (`HaltOrder`) calls `halt_step` instead of `advance` for a live run in
Trading or Liquidating. The first halted step records the halt in the checkpoint and says so (a `Halted`
Event, the condition `Halted=True`); every halted step then takes the run's orders off the exchange: it
reconciles the written intents (so nothing of unknown outcome is forgotten), books stops that filled, and
cancels the protective stops; with `flatten` it also sells the positions (once every intent is resolved).
Nothing else happens: no candle is looked at, no order is opened, no deadline applies.

Clearing the switch does not resume anything: a halted run stays halted (no orders, its positions unguarded
by stops) until a person resumes it with a new value of the `resume` annotation (`resume` here), or cancels or
deletes it (a cancel then liquidates as usual). The resume value seen when the halt began is recorded, so an
old annotation never resumes a later halt. Resuming re-places the stops at the session's next step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from traiding.domain.statemachine import Decision, Phase
from traiding.pipeline.context import RunContext
from traiding.pipeline.runner import Persist
from traiding.pipeline.session import TradingSession, describe_holdings
from traiding.resource import Condition, TradingRunStatus

HALT_KEY = "halt"  # checkpoint entry while a run is halted
HALT_CONDITION = "Halted"
HALTED_RETRY = timedelta(seconds=1)
HALTABLE = (Phase.TRADING, Phase.LIQUIDATING)


@dataclass(frozen=True)
class HaltOrder:
    """A kill switch that is set: where it is (for messages), whether to sell, and the reason it gives."""

    source: str
    flatten: bool = False
    reason: str = ""


@dataclass(frozen=True)
class HaltResult:
    status: TradingRunStatus
    decision: Decision | None  # None: no halt applies now; the driver does the run's normal step from `status`


async def halt_step(
    ctx: RunContext,
    status: TradingRunStatus,
    now: datetime,
    *,
    order: HaltOrder | None,
    resume: str,
    stopping: bool = False,
    persist: Persist | None = None,
) -> HaltResult:
    """One step of a live run under the kill switch (see module doc); `resume` is the resume annotation's value,
    `stopping` whether the run is cancelled or deleted."""
    phase = Phase(status.phase)
    if not ctx.live or phase not in HALTABLE:
        return HaltResult(status, None)
    status = status.model_copy(deep=True)
    record: dict[str, Any] | None = status.checkpoint.get(HALT_KEY)
    if order is None:
        if record is None:
            return HaltResult(status, None)
        if stopping or (resume and resume != record.get("resumeSeen")):
            _end_halt(ctx, status, now, record, "cancelled" if stopping else "resumed")
            return HaltResult(status, None)
        message = (
            f"halted by the kill switch ({record['source']}) since {record['since']}; the switch is clear: resume "
            "with a new value of the traiding.io/resume annotation"
        )
        return HaltResult(status, _stay(status, phase, "Halted", message))
    if record is None:
        record = {"since": now.isoformat(), "source": order.source, "reason": order.reason, "resumeSeen": resume}
        status.checkpoint[HALT_KEY] = record
        ctx.events.emit(
            phase.value,
            "Halted",
            f"the kill switch ({order.source}) halted the run{_because(order)}: cancelling its orders"
            + (" and closing its positions" if order.flatten else ""),
            level="error",
        )
    record["flatten"] = order.flatten

    async def flush() -> None:
        if persist is not None:
            await persist(status)

    done = await TradingSession(ctx, status.checkpoint, flush).halt(flatten=order.flatten)
    message = f"halted by the kill switch ({order.source}){_because(order)}: {done}"
    status.set_condition(
        Condition(
            type=HALT_CONDITION,
            status="True",
            reason="KillSwitch",
            message=message,
            lastTransitionTime=now,
            observedGeneration=status.observedGeneration,
        )
    )
    return HaltResult(status, _stay(status, phase, "Halted", message))


def is_halted(checkpoint: dict[str, Any]) -> bool:
    return HALT_KEY in checkpoint


def _because(order: HaltOrder) -> str:
    return f" ({order.reason})" if order.reason else ""


def _stay(status: TradingRunStatus, phase: Phase, reason: str, message: str) -> Decision:
    status.reason, status.message = reason, message
    return Decision(phase=phase, reason=reason, message=message, retry_after=HALTED_RETRY)


def _end_halt(ctx: RunContext, status: TradingRunStatus, now: datetime, record: dict[str, Any], how: str) -> None:
    del status.checkpoint[HALT_KEY]
    message = (
        f"the halt since {record['since']} ({record['source']}) ended: {how} by a person; "
        f"holding {describe_holdings(status.checkpoint)}"
    )
    ctx.events.emit(status.phase, "Resumed", message, level="warning")
    status.set_condition(
        Condition(
            type=HALT_CONDITION,
            status="False",
            reason="Resumed" if how == "resumed" else "Cancelled",
            message=message,
            lastTransitionTime=now,
            observedGeneration=status.observedGeneration,
        )
    )

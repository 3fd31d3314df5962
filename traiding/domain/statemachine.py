"""The TradingRun phase state machine: pure, no Kubernetes, no network, no clock of its own.

The operator and `traiding run` both (1) run the current phase's work, which yields an
`Outcome`, then (2) ask `decide` what follows. `decide` is a function of the run's settings,
its current status and what was observed, so every transition is testable without a cluster and
an operator restart loses nothing: everything it needs is in the status.

A run never becomes final while it holds positions: a trading session that ends, fails, times out or is
cancelled with positions (or orders) open goes to Liquidating first, which retries the exit with backoff,
without limit, and only then moves on to the phase the session was headed for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    DATA_CHECK = "DataCheck"
    BACKTEST = "Backtest"
    API_CHECK = "ApiCheck"
    AWAITING_APPROVAL = "AwaitingApproval"
    TRADING = "Trading"
    LIQUIDATING = "Liquidating"
    REPORTING = "Reporting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


TERMINAL: frozenset[Phase] = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})

# Phases that do work and can therefore pass, fail or hit a transient error.
WORK_PHASES: tuple[Phase, ...] = (
    Phase.DATA_CHECK,
    Phase.BACKTEST,
    Phase.API_CHECK,
    Phase.TRADING,
    Phase.LIQUIDATING,
    Phase.REPORTING,
)

_FORWARD: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.DATA_CHECK}),
    Phase.DATA_CHECK: frozenset({Phase.BACKTEST}),
    Phase.BACKTEST: frozenset({Phase.API_CHECK}),
    Phase.API_CHECK: frozenset({Phase.AWAITING_APPROVAL, Phase.TRADING}),
    Phase.AWAITING_APPROVAL: frozenset({Phase.TRADING}),
    # A trading session always ends in a report, also when the kill switch stopped it; positions it could not
    # close (or any it holds when it fails or is cancelled) are liquidated first.
    Phase.TRADING: frozenset({Phase.REPORTING, Phase.LIQUIDATING}),
    Phase.LIQUIDATING: frozenset({Phase.REPORTING}),
    Phase.REPORTING: frozenset({Phase.SUCCEEDED}),
}

ALLOWED: dict[Phase, frozenset[Phase]] = {
    phase: (_FORWARD.get(phase, frozenset()) | {Phase.FAILED, Phase.CANCELLED})
    if phase not in TERMINAL
    else frozenset()
    for phase in Phase
}


class IllegalTransition(ValueError):
    """A transition the lifecycle does not allow (e.g. out of a final phase)."""


def check_transition(current: Phase, target: Phase) -> None:
    if target not in ALLOWED[current]:
        allowed = ", ".join(sorted(ALLOWED[current])) or "none (final phase)"
        raise IllegalTransition(f"{current} -> {target} is not allowed; from {current}: {allowed}")


class OutcomeKind(StrEnum):
    PASSED = "Passed"  # the phase's gate passed; move on
    FAILED = "Failed"  # the gate failed for good: stop the run with the reason
    RUNNING = "Running"  # work goes on (e.g. a trading session in progress); check again later
    TRANSIENT = "Transient"  # a transient error (network, rate limit, maintenance): retry with backoff


@dataclass(frozen=True)
class Outcome:
    phase: Phase
    kind: OutcomeKind
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Exit:
    """Where a liquidating run goes once it is flat, and why it left trading."""

    phase: Phase  # Reporting, Failed or Cancelled
    reason: str
    message: str


@dataclass(frozen=True)
class Approval:
    approved_by: str
    approved_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class RunSettings:
    """What `decide` needs of the spec, kept small so tests can build it directly."""

    live: bool
    phase_timeouts: dict[Phase, timedelta] = field(default_factory=dict)
    max_attempts: int = 5
    # Per-phase limits where the default does not fit: a trading session holds positions, so it rides out
    # an exchange outage for longer instead of abandoning them after half a minute.
    phase_max_attempts: dict[Phase, int] = field(default_factory=dict)
    backoff_base: timedelta = timedelta(seconds=2)
    backoff_max: timedelta = timedelta(minutes=2)
    approval_wait: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class RunState:
    """What `decide` needs of the status."""

    phase: Phase
    phase_started_at: datetime | None = None
    attempts: int = 0
    exit: Exit | None = None  # Liquidating: where the run goes once flat


@dataclass(frozen=True)
class Observations:
    now: datetime
    outcome: Outcome | None = None
    cancel_requested: bool = False
    approval: Approval | None = None
    # Whether the trading session holds positions, open orders or orders whose outcome is not known yet.
    holds_positions: bool = False
    # The object is being deleted (a cancel with its own reason); `leave_positions`: the spec says not to
    # liquidate on deletion, so a deleted run ends at once, positions and their stops left as they are.
    deleting: bool = False
    leave_positions: bool = False


@dataclass(frozen=True)
class Decision:
    phase: Phase  # the phase after this step (the same one when staying)
    reason: str
    message: str
    attempts: int = 0  # attempts in the (new) phase so far
    retry_after: timedelta | None = None  # when to look again; None: act now (or never, if final)
    exit: Exit | None = None  # Liquidating: where the run goes once flat

    @property
    def final(self) -> bool:
        return self.phase in TERMINAL


def _next_after(phase: Phase, settings: RunSettings) -> Phase:
    if phase is Phase.API_CHECK:
        return Phase.AWAITING_APPROVAL if settings.live else Phase.TRADING
    if phase in (Phase.TRADING, Phase.LIQUIDATING):
        return Phase.REPORTING
    (target,) = _FORWARD[phase]
    return target


def _backoff(attempts: int, settings: RunSettings) -> timedelta:
    # the exponent is capped: a liquidation retries without limit, and 2**500 seconds overflows a timedelta
    delay = settings.backoff_base * (1 << min(max(attempts - 1, 0), 30))
    return min(delay, settings.backoff_max)


def _move(state: RunState, target: Phase, reason: str, message: str) -> Decision:
    check_transition(state.phase, target)
    return Decision(phase=target, reason=reason, message=message)


LEFT_OPEN = "positions left open (onDelete: LeavePositions)"


def _leave_trading(state: RunState, seen: Observations, target: Phase, reason: str, message: str) -> Decision:
    """Out of Trading to `target`, through Liquidating while the session holds anything."""
    if not seen.holds_positions:
        return _move(state, target, reason, message)
    if seen.deleting and seen.leave_positions:
        return _move(state, target, reason, f"{message}; {LEFT_OPEN}")
    check_transition(state.phase, Phase.LIQUIDATING)
    return Decision(
        phase=Phase.LIQUIDATING,
        reason=reason,
        message=f"{message}; closing the open positions first",
        exit=Exit(target, reason, message),
    )


def _stop_reason(phase: Phase, seen: Observations) -> tuple[str, str]:
    if seen.deleting:
        return "Deleted", f"deleted during {phase}"
    return "Cancelled", f"cancelled during {phase}"


def decide(settings: RunSettings, state: RunState, seen: Observations) -> Decision:
    """The next step of a run, from its settings, its status and what was just observed."""
    phase = state.phase
    if phase in TERMINAL:
        raise IllegalTransition(f"{phase} is a final phase; a finished run does not change")
    if phase is Phase.LIQUIDATING:
        return _decide_liquidation(settings, state, seen)

    if seen.cancel_requested or seen.deleting:
        reason, message = _stop_reason(phase, seen)
        if phase is Phase.TRADING:
            return _leave_trading(state, seen, Phase.CANCELLED, reason, message)
        return _move(state, Phase.CANCELLED, reason, message)

    timeout = settings.phase_timeouts.get(phase)
    if timeout is not None and state.phase_started_at is not None and seen.now - state.phase_started_at > timeout:
        return _fail(state, seen, "PhaseTimeout", timeout_message(phase, timeout))

    if phase is Phase.PENDING:
        return _move(state, Phase.DATA_CHECK, "Started", "checking market data")

    if phase is Phase.AWAITING_APPROVAL:
        return _decide_approval(settings, state, seen)

    outcome = seen.outcome
    if outcome is None or outcome.phase is not phase:
        # Nothing new was observed for this phase: (re)run its work now.
        return Decision(phase=phase, reason="Waiting", message=f"{phase} in progress", attempts=state.attempts)

    if outcome.kind is OutcomeKind.PASSED:
        target = _next_after(phase, settings)
        if phase is Phase.TRADING:
            return _leave_trading(state, seen, target, outcome.reason, outcome.message)
        return _move(state, target, outcome.reason, outcome.message)
    if outcome.kind is OutcomeKind.FAILED:
        return _fail(state, seen, outcome.reason, outcome.message)
    if outcome.kind is OutcomeKind.RUNNING:
        # Progress resets the count: attempts measure consecutive transient errors, not a session's age.
        return Decision(phase=phase, reason=outcome.reason, message=outcome.message, retry_after=settings.backoff_base)
    attempts = state.attempts + 1
    limit = settings.phase_max_attempts.get(phase, settings.max_attempts)
    if attempts >= limit:
        return _fail(state, seen, outcome.reason, f"{outcome.message} (gave up after {attempts} attempts)")
    return Decision(
        phase=phase,
        reason=outcome.reason,
        message=f"{outcome.message} (attempt {attempts} of {limit}, retrying)",
        attempts=attempts,
        retry_after=_backoff(attempts, settings),
    )


def timeout_message(phase: Phase, limit: timedelta) -> str:
    return f"{phase} did not finish within its deadline of {limit}"


def _fail(state: RunState, seen: Observations, reason: str, message: str) -> Decision:
    if state.phase is Phase.TRADING:
        return _leave_trading(state, seen, Phase.FAILED, reason, message)
    return _move(state, Phase.FAILED, reason, message)


def _decide_liquidation(settings: RunSettings, state: RunState, seen: Observations) -> Decision:
    """Close everything, then go where the session was headed; retried with backoff for as long as it takes
    (no deadline, no attempt limit): a run that gave up here would abandon its positions."""
    exit_ = state.exit or Exit(Phase.FAILED, "Liquidated", "the session was left while holding positions")
    if (seen.cancel_requested or seen.deleting) and exit_.phase is Phase.REPORTING:
        reason, message = _stop_reason(Phase.LIQUIDATING, seen)
        exit_ = Exit(Phase.CANCELLED, reason, message)
    if seen.deleting and seen.leave_positions:
        return _move(state, exit_.phase, exit_.reason, f"{exit_.message}; {LEFT_OPEN}")
    outcome = seen.outcome
    if outcome is None or outcome.phase is not Phase.LIQUIDATING:
        return Decision(Phase.LIQUIDATING, "Liquidating", "closing positions", state.attempts, exit=exit_)
    if outcome.kind is OutcomeKind.PASSED:
        done = f"{exit_.message}; {outcome.message}" if outcome.message else exit_.message
        return _move(state, exit_.phase, exit_.reason, done)
    if outcome.kind is OutcomeKind.RUNNING:
        return Decision(
            Phase.LIQUIDATING, outcome.reason, outcome.message, retry_after=settings.backoff_base, exit=exit_
        )
    attempts = state.attempts + 1
    return Decision(
        phase=Phase.LIQUIDATING,
        reason=outcome.reason,
        message=f"{outcome.message} (exit attempt {attempts}, retrying)",
        attempts=attempts,
        retry_after=_backoff(attempts, settings),
        exit=exit_,
    )


def _decide_approval(settings: RunSettings, state: RunState, seen: Observations) -> Decision:
    approval = seen.approval
    if approval is not None and approval.approved_at <= seen.now < approval.expires_at:
        return _move(
            state,
            Phase.TRADING,
            "Approved",
            f"live trading approved by {approval.approved_by} at {approval.approved_at.isoformat()}",
        )
    waited_too_long = state.phase_started_at is not None and seen.now - state.phase_started_at > settings.approval_wait
    if waited_too_long:
        return _move(state, Phase.FAILED, "ApprovalTimeout", f"no valid approval within {settings.approval_wait}")
    message = "waiting for a human approval of this live run"
    if approval is not None:
        message = f"the approval by {approval.approved_by} expired at {approval.expires_at.isoformat()}; approve again"
    return Decision(
        phase=Phase.AWAITING_APPROVAL, reason="AwaitingApproval", message=message, retry_after=timedelta(seconds=30)
    )

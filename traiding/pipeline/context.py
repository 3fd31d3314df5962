"""What every phase works with: the run's identity and spec, the exchange, the order API, the event log, the shared
candle history (and through it where CPU work runs), and the report's price series where a driver keeps one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from traiding.domain.statemachine import Outcome, OutcomeKind, Phase
from traiding.domain.timeframes import timeframe_ms
from traiding.errors import UserError
from traiding.pipeline.events import EventLog
from traiding.pipeline.history import HistoryStore
from traiding.pipeline.offload import Offload
from traiding.pipeline.price_series import PriceSeries
from traiding.resource import Mode, TradingRunSpec
from traiding_adapters.errors import CircuitOpen, ExchangeLayerError
from traiding_adapters.exchange import Exchange, OrderApi


@dataclass
class RunContext:
    run_name: str
    run_uid: str
    spec: TradingRunSpec
    exchange: Exchange
    orders: OrderApi  # the paper broker in a dry run, the exchange itself in a live run
    events: EventLog
    history: HistoryStore  # shared by the runs of the process
    has_credentials: bool
    # Why the run's credentials could not be read (a missing Secret, a key that does not decrypt): ApiCheck fails
    # with it; DataCheck and Backtest need no keys and run first.
    credentials_problem: str | None = None
    prices: PriceSeries | None = None  # the session's closes for the report (None: no report drawn)

    @property
    def live(self) -> bool:
        return self.spec.mode is Mode.LIVE

    @property
    def offload(self) -> Offload:
        """Where the phases' CPU-heavy work runs (a process pool in the operator)."""
        return self.history.offload

    @property
    def timeframe(self) -> str:
        return str(self.spec.market.timeframe)

    @property
    def timeframe_ms(self) -> int:
        return timeframe_ms(self.spec.market.timeframe)


@dataclass(frozen=True)
class PhaseResult:
    outcome: Outcome
    results: dict[str, Any] = field(default_factory=dict)


# A phase's work reads and updates the run's checkpoint (plain JSON) in place; the caller persists it
# after every call, which is what lets a restarted operator continue where it was.
CheckWork = Callable[[RunContext, dict[str, Any]], Awaitable[PhaseResult]]
# Work that must persist the checkpoint in the middle of a step (an order's intent before it is sent) gets
# `Flush`: the driver's write of the run's status as it is at that moment; it raises when the write fails.
Flush = Callable[[], Awaitable[None]]
PhaseWork = Callable[[RunContext, dict[str, Any], Flush], Awaitable[PhaseResult]]


def passed(phase: Phase, reason: str, message: str, results: dict[str, Any]) -> PhaseResult:
    return PhaseResult(Outcome(phase, OutcomeKind.PASSED, reason, message), results)


def failed(phase: Phase, reason: str, message: str, results: dict[str, Any] | None = None) -> PhaseResult:
    return PhaseResult(Outcome(phase, OutcomeKind.FAILED, reason, message), results or {})


def outcome_of_error(phase: Phase, error: Exception) -> PhaseResult:
    """Exchange errors marked transient are retried by the state machine; anything else fails the phase.

    An open circuit is retried too: the circuit is shared by every run on the key, so another run's failures
    may have opened it, and it closes again after its cool-down.
    """
    if isinstance(error, ExchangeLayerError):
        kind = OutcomeKind.TRANSIENT if error.transient or isinstance(error, CircuitOpen) else OutcomeKind.FAILED
        return PhaseResult(Outcome(phase, kind, type(error).__name__, str(error)))
    if isinstance(error, UserError):
        return PhaseResult(Outcome(phase, OutcomeKind.FAILED, "InvalidInput", str(error)))
    raise error

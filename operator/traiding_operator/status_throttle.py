"""When a run's status is written after a step: at once when it matters, otherwise at most every few seconds.

A trading session steps several times a candle (five times a second on a fast replay), and most steps only
move its progress: the equity curve, the last closed candles and prices, the risk state's running figures,
the progress line. Writing each of those for each of hundreds of runs would keep the API server (and every
watcher of TradingRuns) busy with little news. So a step's status is written
- at once when anything but that progress changed: the phase, a reason, a condition, a phase record's state
  or attempts, the approval, and every part of the checkpoint the money path keeps (positions, stops,
  intents, booked orders, trades, cash, fees, dust, the session's start);
- otherwise when the last write is `STATUS_INTERVAL_S` old.
Writes the money path asks for in the middle of a step (an order's intent before it is sent) are never
throttled: they go straight to the status writer. What a throttled step did not write is redone, if the
operator stops before the next write, by the next driver from the last written status: the candles since
then are processed again (a candle acted on was written with its order's intent).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from traiding.resource import TradingRunStatus
from traiding_operator.status_writer import digest

STATUS_INTERVAL_S = 5.0
# The session's progress: recomputed from the candles whenever a step is redone.
PROGRESS_KEYS = frozenset({"equity", "last_closed", "last_prices", "risk", "degraded_steps", "errors", "paper"})


def lasting_view(status: TradingRunStatus) -> bytes:
    """Everything in the status but the session's progress, as one comparable digest."""
    head = status.model_dump(mode="json", exclude_none=True, exclude={"message", "phases", "checkpoint"})
    phases = {
        name: record.model_dump(mode="json", exclude_none=True, exclude={"results", "message"})
        for name, record in status.phases.items()
    }
    checkpoint = {key: value for key, value in status.checkpoint.items() if key != "session"}
    session = {k: v for k, v in (status.checkpoint.get("session") or {}).items() if k not in PROGRESS_KEYS}
    return digest([head, phases, checkpoint, session])


class StatusThrottle:
    """Tracks the last written status of one run (see module doc)."""

    def __init__(self, interval_s: float = STATUS_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._view: bytes | None = None
        self._written_at = -float("inf")
        self.pending = False  # a step's status was not written yet

    def due(self, status: TradingRunStatus) -> bool:
        """Whether the status after a step is to be written now; if not, it is pending."""
        due = self.clock() - self._written_at >= self.interval_s or lasting_view(status) != self._view
        self.pending = not due
        return due

    def written(self, status: TradingRunStatus) -> None:
        """`status` is what the object holds now (written by this driver, or read)."""
        self._view = lasting_view(status)
        self._written_at = self.clock()
        self.pending = False

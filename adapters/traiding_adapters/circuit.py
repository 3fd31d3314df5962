"""A circuit breaker per exchange connection: after N consecutive transient failures, fail fast.

closed --N consecutive failures--> open --cool-down--> half-open (one probe goes through)
half-open --probe succeeds--> closed;  half-open --probe fails--> open (a new cool-down)

While open, `before_call` raises `CircuitOpen` naming the error that opened it, so a phase under a
sustained outage fails within (attempts x timeout) instead of hammering a dead exchange for its whole
timeout. Only transient failures count: a rejected order proves the exchange is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from traiding_adapters.errors import CircuitOpen
from traiding_adapters.exchange import CircuitState


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cool_down_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down_s = cool_down_s
        self._clock = clock
        self._state: CircuitState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.last_error: str | None = None

    @property
    def state(self) -> CircuitState:
        if self._state == "open" and self._clock() - self._opened_at >= self.cool_down_s:
            return "half-open"
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go out now (closed, or the one half-open probe)."""
        state = self.state
        if state == "closed":
            return
        if state == "half-open" and not self._probe_in_flight:
            self._state = "half-open"
            self._probe_in_flight = True
            return
        retry_in = max(0.0, self._opened_at + self.cool_down_s - self._clock())
        raise CircuitOpen(
            f"{self.name} circuit is open after {self._failures} consecutive failures; last error: "
            f"{self.last_error}; next attempt in {retry_in:.0f} s",
            last_error=self.last_error,
            retry_in_s=retry_in,
        )

    def record_success(self) -> None:
        self._state = "closed"
        self._failures = 0
        self._probe_in_flight = False

    def record_failure(self, error: BaseException) -> None:
        self.last_error = str(error) or type(error).__name__
        self._failures += 1
        if self._state == "half-open" or self._failures >= self.failure_threshold:
            self._state = "open"
            self._opened_at = self._clock()
        self._probe_in_flight = False

    def record_neutral(self) -> None:
        """A call ended without telling anything about the exchange's health (e.g. cancelled)."""
        self._probe_in_flight = False

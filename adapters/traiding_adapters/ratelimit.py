"""One request-weight budget per exchange and API key, shared by every run in the process.

ccxt's `enableRateLimit` throttles one ccxt instance; exchanges count weight per key/IP, so twenty runs on
one key need one budget. `WeightBudget` is a sliding 60 s window of the weights we spent:

- `acquire(weight)` waits (FIFO) until the weight fits under `limit * safety`, then books it. A booked
  entry stays "in flight" until `release`, and only then starts its 60 s: the exchange counts a request
  when it receives it, which is after we booked it, so the window never expires an entry early.
- `observe_used_weight(n)` honours the exchange's own count (Binance `X-MBX-USED-WEIGHT-1M`): with several
  runs in flight the header belongs to whichever response came last, so it is only a lower bound of the
  exchange's count; we take the larger of our count and it (the excess becomes a booked entry).
- `pause_for(seconds)` stops everyone until then (a 429/418 `Retry-After`).

A sliding window is at least as strict as the exchange's fixed minute windows, so staying under it keeps
every fixed window under the limit too.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from traiding_adapters.errors import RateLimited

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Booking:
    """Weight booked by one request; in flight until released."""

    weight: float
    released: bool = False


@dataclass(frozen=True)
class BudgetStats:
    limit: float
    capacity: float  # the part of the limit we allow ourselves
    used: float  # weight in the current window (ours, in flight, and the exchange's excess)
    peak_used: float
    total_weight: float
    requests: int
    waits: int  # acquisitions that had to wait
    header_used: int | None  # the last X-MBX-USED-WEIGHT-1M seen
    paused_until: float | None


class WeightBudget:
    """A shared sliding-window weight budget (see module doc). Safe for any number of concurrent tasks."""

    def __init__(
        self,
        limit: float,
        *,
        window_s: float = 60.0,
        safety: float = 0.9,
        max_pause_wait_s: float = 30.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if limit <= 0:
            raise ValueError(f"weight limit must be positive, got {limit}")
        self._limit = float(limit)
        self._safety = safety
        self._window_s = window_s
        self._max_pause_wait_s = max_pause_wait_s
        self._clock = clock
        self._sleep = sleep
        # released weight as (window start, weight), oldest first: the clock is monotonic, so appending
        # keeps the order and expiry only ever pops from the left
        self._released: deque[tuple[float, float]] = deque()
        self._released_sum = 0.0
        self._in_flight_sum = 0.0
        self._lock = asyncio.Lock()
        self._paused_until = 0.0
        self._peak = 0.0
        self._total = 0.0
        self._requests = 0
        self._waits = 0
        self._header_used: int | None = None

    @property
    def limit(self) -> float:
        return self._limit

    @property
    def capacity(self) -> float:
        return self._limit * self._safety

    def set_limit(self, limit: float) -> None:
        """Adopt the limit the exchange declares (Binance exchangeInfo rateLimits REQUEST_WEIGHT)."""
        if limit > 0:
            self._limit = float(limit)

    def used(self) -> float:
        return self._expire(self._clock())

    async def acquire(self, weight: float) -> Booking:
        """Wait until `weight` fits, book it and return the booking for `release`.

        Raises RateLimited instead of waiting when the exchange paused us (Retry-After, a ban) for longer
        than `max_pause_wait_s`: a phase then fails in bounded time with the reason.
        """
        waited = False
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in arrival order
            while True:
                now = self._clock()
                if now < self._paused_until:
                    delay = self._paused_until - now
                    if delay > self._max_pause_wait_s:
                        raise RateLimited(
                            f"the exchange asked us to stop sending for {delay:.0f} more seconds (429/418 "
                            "Retry-After); lower the number of runs sharing this key or their polling rate",
                            retry_after_s=delay,
                        )
                else:
                    used = self._expire(now)
                    # a single call heavier than the whole budget still goes when nothing else is booked
                    if used + weight <= self.capacity or used == 0:
                        entry = Booking(weight)
                        self._in_flight_sum += weight
                        self._requests += 1
                        self._total += weight
                        self._peak = max(self._peak, used + weight)
                        if waited:
                            self._waits += 1
                        return entry
                    delay = self._time_until_free(now, used + weight - self.capacity)
                waited = True
                await self._sleep(max(delay, 0.001))

    def release(self, entry: Booking) -> None:
        """The request of `entry` is answered (or failed): its window starts now."""
        if not entry.released:
            entry.released = True
            self._in_flight_sum -= entry.weight
            self._released.append((self._clock(), entry.weight))
            self._released_sum += entry.weight

    def observe_used_weight(self, used: int) -> None:
        """Take the exchange's reported weight for the current window if it exceeds ours."""
        self._header_used = used
        now = self._clock()
        ours = self._expire(now)
        if used > ours:
            self._released.append((now, used - ours))
            self._released_sum += used - ours
            self._peak = max(self._peak, float(used))

    def pause_for(self, seconds: float) -> None:
        """Nobody sends for `seconds` (a Retry-After); a longer pause in force is kept."""
        self._paused_until = max(self._paused_until, self._clock() + max(seconds, 0.0))

    def stats(self) -> BudgetStats:
        now = self._clock()
        return BudgetStats(
            limit=self._limit,
            capacity=self.capacity,
            used=self._expire(now),
            peak_used=self._peak,
            total_weight=self._total,
            requests=self._requests,
            waits=self._waits,
            header_used=self._header_used,
            paused_until=self._paused_until if self._paused_until > now else None,
        )

    def _expire(self, now: float) -> float:
        """Drop weight whose window has passed; the weight still counted (released and in flight)."""
        horizon = now - self._window_s
        released = self._released
        while released and released[0][0] <= horizon:
            self._released_sum -= released.popleft()[1]
        if not released:
            self._released_sum = 0.0  # no float drift survives an empty window
        return self._released_sum + self._in_flight_sum

    def _time_until_free(self, now: float, excess: float) -> float:
        """Seconds until released weight >= `excess` leaves the window (in-flight weight never does)."""
        freed = 0.0
        for started, weight in self._released:
            freed += weight
            if freed >= excess:
                return started + self._window_s - now
        # what must leave is still in flight: check again shortly
        return 0.05

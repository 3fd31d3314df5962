"""Clock skew against the exchange: NTP-style measurement, the bound check, and the correction ccxt uses.

One sample: t0 = our time before the request, s = the exchange's time, t1 = our time after the answer.
Assuming the answer was stamped half-way, offset = s - (t0 + t1) / 2 with an error of at most rtt / 2.
Of several samples the one with the smallest round trip is the most precise.

Correction: ccxt's binance signs with `nonce() = milliseconds() - options['timeDifference']`, so setting
`timeDifference = -offset` (ours minus the exchange's, as `load_time_difference` computes it) makes
signed requests carry the exchange's time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from traiding_adapters.errors import ClockSkewError, clock_skew_message


@dataclass(frozen=True)
class ClockSample:
    sent_ms: float
    server_ms: float
    received_ms: float

    @property
    def rtt_ms(self) -> float:
        return self.received_ms - self.sent_ms

    @property
    def offset_ms(self) -> float:
        """The exchange's time minus ours (positive: our clock is behind)."""
        return self.server_ms - (self.sent_ms + self.received_ms) / 2


@dataclass(frozen=True)
class ClockOffset:
    offset_ms: int  # the exchange's time minus ours
    rtt_ms: float  # round trip of the sample used; the offset is exact to +- rtt/2
    samples: int


def best_offset(samples: list[ClockSample]) -> ClockOffset:
    """The offset of the lowest-round-trip sample."""
    if not samples:
        raise ValueError("no clock samples")
    best = min(samples, key=lambda sample: sample.rtt_ms)
    return ClockOffset(offset_ms=round(best.offset_ms), rtt_ms=best.rtt_ms, samples=len(samples))


async def measure_offset(
    server_time_ms: Callable[[], Awaitable[int]],
    *,
    samples: int = 3,
    now_ms: Callable[[], float] = lambda: time.time() * 1000.0,
) -> ClockOffset:
    """Measure the exchange's clock offset with `samples` calls of `server_time_ms` (e.g. fetch_time)."""
    collected: list[ClockSample] = []
    for _ in range(max(samples, 1)):
        sent = now_ms()
        server = await server_time_ms()
        received = now_ms()
        collected.append(ClockSample(sent, float(server), received))
    return best_offset(collected)


def check_skew(offset: ClockOffset, max_skew_ms: int, exchange_id: str) -> None:
    """Raise ClockSkewError when |offset| exceeds `max_skew_ms` (beyond the measurement's own uncertainty)."""
    if abs(offset.offset_ms) - offset.rtt_ms / 2 > max_skew_ms:
        raise ClockSkewError(clock_skew_message(offset.offset_ms, exchange_id, max_skew_ms), offset.offset_ms)


def ccxt_time_difference(offset_ms: int) -> int:
    """The value for ccxt's `options['timeDifference']` (ours minus the exchange's)."""
    return -offset_ms

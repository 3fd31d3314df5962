"""Request weight per IP per fixed minute window, Binance style: 429 over the limit, 418 (ban) for
clients that keep going after 429s; and the per-account order count limits.

Windows are aligned to the wall clock (Binance resets its counters at each full minute).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from traiding_simulator import errors
from traiding_simulator.clock import wall_ms

MAX_BAN_MS = 3 * 24 * 3600 * 1000


@dataclass
class _Usage:
    window_start: int = 0
    used: int = 0
    rejections: int = 0
    banned_until: int = 0
    bans: int = 0


class WeightLimiter:
    def __init__(
        self,
        limit: int,
        window_ms: int = 60_000,
        ban_after_rejections: int = 3,
        ban_ms: int = 120_000,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.ban_after_rejections = ban_after_rejections
        self.ban_ms = ban_ms
        self._clock = clock
        self._usage: dict[str, _Usage] = {}
        self.served_429 = 0
        self.served_418 = 0

    def _current(self, ip: str, now: int) -> _Usage:
        usage = self._usage.setdefault(ip, _Usage())
        window_start = now - now % self.window_ms
        if usage.window_start != window_start:
            usage.window_start, usage.used, usage.rejections = window_start, 0, 0
        return usage

    def used(self, ip: str) -> int:
        return self._current(ip, self._clock()).used

    def used_by_ip(self) -> dict[str, int]:
        now = self._clock()
        return {ip: self._current(ip, now).used for ip in list(self._usage)}

    def charge(self, ip: str, weight: int) -> int:
        """Add `weight` for `ip`; returns the weight used in this window or raises 429/418."""
        now = self._clock()
        usage = self._current(ip, now)
        if usage.banned_until > now:
            self.served_418 += 1
            raise errors.banned(usage.banned_until, math.ceil((usage.banned_until - now) / 1000))
        usage.used += weight
        if usage.used <= self.limit:
            return usage.used
        usage.rejections += 1
        if usage.rejections > self.ban_after_rejections:
            usage.bans += 1
            usage.banned_until = now + min(self.ban_ms * 2 ** (usage.bans - 1), MAX_BAN_MS)
            self.served_418 += 1
            raise errors.banned(usage.banned_until, math.ceil((usage.banned_until - now) / 1000))
        self.served_429 += 1
        retry_after = math.ceil((usage.window_start + self.window_ms - now) / 1000)
        raise errors.too_many_requests(self.limit, max(retry_after, 1))

    def reset(self) -> None:
        self._usage.clear()
        self.served_429 = 0
        self.served_418 = 0


class OrderCounter:
    """Binance's unfilled order count per account, in a 10-second and a 1-day window (X-MBX-ORDER-COUNT-10S / -1D).

    An accepted order adds one to the current window of each; an order's first fill takes `credit` off the current
    windows again, never below zero (Binance's "Spot Unfilled Order Count Rules": one for a taker, more for a
    maker); cancels and expiries change nothing. At the limit a new order is refused with 429 -1015 and a
    Retry-After of the seconds until that window resets. Windows are aligned to the wall clock (the DAY one to
    UTC midnight). `credit_fills=False` keeps every accepted order counted (a stricter exchange for tests).
    """

    def __init__(
        self, limit_10s: int, limit_1d: int, clock: Callable[[], int] = wall_ms, *, credit_fills: bool = True
    ) -> None:
        self.limits = {"10S": (10_000, limit_10s), "1D": (86_400_000, limit_1d)}
        self.credit_fills = credit_fills
        self._clock = clock
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}

    def counts(self, account: str) -> dict[str, int]:
        now = self._clock()
        out: dict[str, int] = {}
        for name, (window, _) in self.limits.items():
            start, count = self._counts.get((account, name), (0, 0))
            out[name] = count if start == now - now % window else 0
        return out

    def check(self, account: str) -> None:
        """Refuse a new order (429 -1015, Retry-After) when a window is full."""
        now = self._clock()
        counts = self.counts(account)
        for name, (window, limit) in self.limits.items():
            if counts[name] >= limit:
                unit = "10 SECOND" if name == "10S" else "1 DAY"
                retry_after = math.ceil((window - now % window) / 1000)
                raise errors.BinanceError(
                    429,
                    -1015,
                    f"Too many new orders; current limit is {limit} orders per {unit}.",
                    {"Retry-After": str(max(retry_after, 1))},
                )

    def add(self, account: str) -> dict[str, int]:
        """Count one accepted order; returns the counts the order's answer reports."""
        now = self._clock()
        counts = self.counts(account)
        for name, (window, _) in self.limits.items():
            self._counts[(account, name)] = (now - now % window, counts[name] + 1)
        return {name: counts[name] + 1 for name in self.limits}

    def credit(self, account: str, orders: int) -> None:
        """An order of `account` filled for the first time: `orders` off the current windows, not below zero."""
        if not self.credit_fills:
            return
        now = self._clock()
        counts = self.counts(account)
        for name, (window, _) in self.limits.items():
            self._counts[(account, name)] = (now - now % window, max(counts[name] - orders, 0))

    def reset(self) -> None:
        self._counts.clear()

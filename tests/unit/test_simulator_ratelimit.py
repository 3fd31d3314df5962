"""Request weight per minute: 429 over the limit, 418 for clients that keep going; order count limits."""

from __future__ import annotations

import pytest

from traiding_simulator.errors import BinanceError
from traiding_simulator.ratelimit import OrderCounter, WeightLimiter


class FakeClock:
    def __init__(self, now: int = 1_800_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_weight_accumulates_and_resets_at_the_window_boundary() -> None:
    clock = FakeClock()
    limiter = WeightLimiter(100, window_ms=60_000, clock=clock)
    assert limiter.charge("a", 20) == 20
    assert limiter.charge("a", 30) == 50
    assert limiter.charge("b", 5) == 5  # per IP
    clock.now += 60_000
    assert limiter.charge("a", 1) == 1


def test_over_the_limit_is_429_with_retry_after_until_the_window_ends() -> None:
    clock = FakeClock(1_800_000_000_000 - 1_800_000_000_000 % 60_000 + 45_000)  # 15 s before the window ends
    limiter = WeightLimiter(10, window_ms=60_000, ban_after_rejections=3, clock=clock)
    limiter.charge("a", 10)
    with pytest.raises(BinanceError) as err:
        limiter.charge("a", 1)
    assert (err.value.status, err.value.code) == (429, -1003)
    assert err.value.headers["Retry-After"] == "15"
    assert limiter.served_429 == 1


def test_hammering_after_429s_gets_the_ip_banned_with_418() -> None:
    clock = FakeClock()
    limiter = WeightLimiter(5, window_ms=60_000, ban_after_rejections=2, ban_ms=120_000, clock=clock)
    limiter.charge("a", 5)
    statuses = []
    for _ in range(5):
        try:
            limiter.charge("a", 1)
        except BinanceError as exc:
            statuses.append(exc.status)
    assert statuses == [429, 429, 418, 418, 418]
    clock.now += 60_000  # a new window does not lift a ban
    with pytest.raises(BinanceError) as err:
        limiter.charge("a", 1)
    assert err.value.status == 418 and int(err.value.headers["Retry-After"]) <= 60
    clock.now += 60_001
    assert limiter.charge("a", 1) == 1
    assert limiter.charge("other", 1) == 1


def test_repeat_bans_get_longer() -> None:
    clock = FakeClock()
    limiter = WeightLimiter(1, window_ms=60_000, ban_after_rejections=0, ban_ms=1_000, clock=clock)
    limiter.charge("a", 1)
    with pytest.raises(BinanceError) as first:
        limiter.charge("a", 1)
    clock.now += 60_000
    limiter.charge("a", 1)
    with pytest.raises(BinanceError) as second:
        limiter.charge("a", 1)
    assert int(first.value.headers["Retry-After"]) == 1
    assert int(second.value.headers["Retry-After"]) == 2


def test_order_count_limit_per_ten_seconds() -> None:
    clock = FakeClock(1_800_000_000_000)
    counter = OrderCounter(limit_10s=2, limit_1d=100, clock=clock)
    assert counter.charge("main") == {"10S": 1, "1D": 1}
    assert counter.charge("main")["10S"] == 2
    with pytest.raises(BinanceError) as err:
        counter.charge("main")
    assert (err.value.status, err.value.code) == (429, -1015)
    assert counter.charge("other")["10S"] == 1
    clock.now += 10_000
    assert counter.charge("main")["10S"] == 1
    assert counter.counts("main")["1D"] == 3  # the refused order is not counted

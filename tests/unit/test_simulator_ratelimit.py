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


def test_the_unfilled_order_count_refuses_at_the_limit_with_retry_after() -> None:
    clock = FakeClock(1_800_000_003_000)  # 3 s into a 10-second window
    counter = OrderCounter(limit_10s=2, limit_1d=100, clock=clock)
    counter.check("main")
    assert counter.add("main") == {"10S": 1, "1D": 1}
    assert counter.add("main")["10S"] == 2
    with pytest.raises(BinanceError) as err:
        counter.check("main")
    assert (err.value.status, err.value.code) == (429, -1015)
    assert err.value.msg == "Too many new orders; current limit is 2 orders per 10 SECOND."
    assert err.value.headers["Retry-After"] == "7"  # the seconds until the window resets
    counter.check("other")  # per account
    clock.now += 7_000
    counter.check("main")
    assert counter.add("main") == {"10S": 1, "1D": 3}


def test_a_first_fill_takes_orders_off_the_count_never_below_zero() -> None:
    # Binance's FAQ, example 1: A, B placed (2); B fills as a taker (1); C (2); D placed (3) and filled (2)
    clock = FakeClock(1_800_000_000_000)
    counter = OrderCounter(limit_10s=100, limit_1d=1000, clock=clock)
    counter.add("main")
    counter.add("main")
    counter.credit("main", 1)
    assert counter.counts("main") == {"10S": 1, "1D": 1}
    counter.add("main")
    counter.add("main")
    counter.credit("main", 1)
    assert counter.counts("main") == {"10S": 2, "1D": 2}
    counter.credit("main", 5)  # a maker's first fill: no credit beyond zero
    assert counter.counts("main") == {"10S": 0, "1D": 0}


def test_the_day_window_resets_at_utc_midnight() -> None:
    midnight = 1_800_057_600_000  # a UTC midnight
    clock = FakeClock(midnight - 30_000)
    counter = OrderCounter(limit_10s=100, limit_1d=1, clock=clock)
    counter.add("main")
    with pytest.raises(BinanceError) as err:
        counter.check("main")
    assert err.value.headers["Retry-After"] == "30" and "1 DAY" in err.value.msg
    clock.now = midnight
    counter.check("main")


def test_the_strict_mode_keeps_every_order_counted() -> None:
    counter = OrderCounter(limit_10s=100, limit_1d=1000, clock=FakeClock(1_800_000_000_000), credit_fills=False)
    counter.add("main")
    counter.credit("main", 1)
    assert counter.counts("main")["10S"] == 1

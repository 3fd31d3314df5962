"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from traiding_adapters.circuit import CircuitBreaker
from traiding_adapters.errors import CircuitOpen, ExchangeUnavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: FakeClock, threshold: int = 3, cool_down: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker("binance", failure_threshold=threshold, cool_down_s=cool_down, clock=clock)


def fail(cb: CircuitBreaker, message: str = "503 Service Unavailable") -> None:
    cb.before_call()
    cb.record_failure(ExchangeUnavailable(message))


def test_opens_after_threshold_consecutive_failures() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    fail(cb)
    fail(cb)
    assert str(cb.state) == "closed"
    fail(cb, "binance is unreachable")
    assert str(cb.state) == "open"
    with pytest.raises(CircuitOpen, match="binance is unreachable") as info:
        cb.before_call()
    assert info.value.last_error == "binance is unreachable"
    assert info.value.retry_in_s == pytest.approx(10.0)


def test_success_resets_the_count() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    fail(cb)
    fail(cb)
    cb.before_call()
    cb.record_success()
    fail(cb)
    fail(cb)
    assert str(cb.state) == "closed"


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    for _ in range(3):
        fail(cb)
    clock.now = 9.9
    assert str(cb.state) == "open"
    clock.now = 10.0
    assert str(cb.state) == "half-open"
    cb.before_call()  # the probe
    with pytest.raises(CircuitOpen):
        cb.before_call()  # a second caller while the probe is out
    cb.record_success()
    assert str(cb.state) == "closed"
    cb.before_call()


def test_half_open_probe_failure_reopens_for_a_new_cool_down() -> None:
    clock = FakeClock()
    cb = breaker(clock)
    for _ in range(3):
        fail(cb)
    clock.now = 10.0
    fail(cb, "still down")
    assert str(cb.state) == "open"
    clock.now = 19.0
    with pytest.raises(CircuitOpen, match="still down"):
        cb.before_call()
    clock.now = 20.0
    assert str(cb.state) == "half-open"


def test_neutral_outcome_frees_the_probe_slot() -> None:
    clock = FakeClock()
    cb = breaker(clock, threshold=1)
    fail(cb)
    clock.now = 10.0
    cb.before_call()
    cb.record_neutral()  # the probe was cancelled
    cb.before_call()  # another probe may go


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)

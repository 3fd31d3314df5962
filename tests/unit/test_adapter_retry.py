"""Retry classification and bounds: transient errors are retried, nothing else is."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from traiding_adapters.errors import (
    AuthenticationFailed,
    CircuitOpen,
    ClockSkewError,
    ExchangeMaintenance,
    ExchangeUnavailable,
    InvalidOrder,
    RateLimited,
)
from traiding_adapters.retry import RetryPolicy, call_with_retries, is_transient


@pytest.mark.parametrize(
    "error",
    [
        ccxt.NetworkError("x"),
        ccxt.RequestTimeout("x"),
        ccxt.ExchangeNotAvailable("x"),
        ccxt.DDoSProtection("x"),
        ccxt.RateLimitExceeded("x"),
        ccxt.OnMaintenance("x"),
        ExchangeUnavailable("x"),
        ExchangeMaintenance("x"),
        RateLimited("x"),
    ],
)
def test_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ccxt.InvalidNonce("x"),  # a NetworkError in ccxt, but a clock problem
        ccxt.AuthenticationError("x"),
        ccxt.InvalidOrder("x"),
        ccxt.InsufficientFunds("x"),
        ccxt.BadSymbol("x"),
        ccxt.ExchangeError("x"),
        AuthenticationFailed("x"),
        InvalidOrder("x"),
        ClockSkewError("x"),
        CircuitOpen("x"),  # retrying is what the breaker prevents
        ValueError("x"),
    ],
)
def test_not_transient(error: Exception) -> None:
    assert not is_transient(error)


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def no_sleep(_: float) -> None:
    return None


async def test_retries_transient_until_success() -> None:
    op = Flaky([ccxt.RequestTimeout("t"), ccxt.ExchangeNotAvailable("503")])
    assert await call_with_retries(op, RetryPolicy(attempts=5), sleep=no_sleep) == "ok"
    assert op.calls == 3


async def test_gives_up_after_the_attempt_bound_with_the_last_error() -> None:
    op = Flaky([ccxt.RequestTimeout(f"t{i}") for i in range(10)])
    with pytest.raises(ccxt.RequestTimeout, match="t2"):
        await call_with_retries(op, RetryPolicy(attempts=3), sleep=no_sleep)
    assert op.calls == 3


async def test_never_retries_a_permanent_error() -> None:
    op = Flaky([ccxt.AuthenticationError("bad key")])
    with pytest.raises(ccxt.AuthenticationError):
        await call_with_retries(op, RetryPolicy(attempts=5), sleep=no_sleep)
    assert op.calls == 1


async def test_backoff_grows_and_is_capped() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    op = Flaky([ccxt.NetworkError("n") for _ in range(5)])
    policy = RetryPolicy(attempts=6, initial_wait_s=0.1, max_wait_s=0.5, jitter_s=0.0, max_total_s=100)
    assert await call_with_retries(op, policy, sleep=record) == "ok"
    assert waits == sorted(waits)
    assert waits[0] == pytest.approx(0.1)
    assert max(waits) <= 0.5

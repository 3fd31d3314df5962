"""Retries with exponential backoff and jitter, for transient errors only, bounded in attempts and time.

Order creation never goes through here: a lost answer to an order is resolved by looking the order up
(see `orders.py`), never by sending it again blindly.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import ccxt.async_support as ccxt
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from traiding_adapters.errors import ClockSkewError, ExchangeLayerError

T = TypeVar("T")

# ccxt's transient family. InvalidNonce is a NetworkError in ccxt but a clock problem: never retried blindly.
_CCXT_TRANSIENT = (
    ccxt.RequestTimeout,
    ccxt.ExchangeNotAvailable,  # includes OnMaintenance
    ccxt.DDoSProtection,
    ccxt.RateLimitExceeded,
    ccxt.NetworkError,
)


def is_transient(error: BaseException) -> bool:
    """True for errors that may pass by themselves: network, timeouts, 5xx, rate limits, maintenance."""
    if isinstance(error, ClockSkewError):
        return False  # the connection re-measured the clock already; the phase retries it later, with backoff
    if isinstance(error, ExchangeLayerError):
        return error.transient
    if isinstance(error, ccxt.InvalidNonce):
        return False
    return isinstance(error, _CCXT_TRANSIENT)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying one read: `attempts` in all, at most `max_total_s` of waiting between them."""

    attempts: int = 4
    initial_wait_s: float = 0.2
    max_wait_s: float = 5.0
    jitter_s: float = 0.2
    max_total_s: float = 20.0


async def call_with_retries(
    operation: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """`operation()` retried on transient errors per `policy`; the last error is re-raised unchanged.

    The first try runs without any retry machinery (the common case costs nothing); only after a transient
    failure does tenacity take over, waiting initial, 2x initial, 4x initial, ... (capped) plus jitter.
    """
    started = time.monotonic()
    try:
        return await operation()
    except Exception as error:
        if policy.attempts <= 1 or not is_transient(error):
            raise
        first_error = error
    await sleep(policy.initial_wait_s + random.uniform(0, policy.jitter_s))  # nosec B311  # jitter, no secret
    elapsed = time.monotonic() - started
    if elapsed >= policy.max_total_s:
        raise first_error
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(policy.attempts - 1) | stop_after_delay(policy.max_total_s - elapsed),
        # tenacity's wait_exponential_jitter changed its parameters across versions; this sum is the same
        wait=wait_exponential(multiplier=policy.initial_wait_s * 2, max=policy.max_wait_s)
        + wait_random(0, policy.jitter_s),
        reraise=True,
        sleep=sleep,
    )
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

"""What the exchange layer reports as it works, for metrics: an observer it calls, never a metrics library.

`ExchangeHub(observer=...)` hands the observer to every connection; `traiding.telemetry.Metrics` satisfies
the protocol. Labels stay bounded: the endpoint is a class (market_data, account, order, system), the
outcome one of ok, rejected (the exchange answered with a refusal), rate_limited, error.
"""

from __future__ import annotations

import time
from typing import Protocol

import ccxt.async_support as ccxt

from traiding_adapters.exchange import Order


class ExchangeObserver(Protocol):
    def exchange_request(self, exchange: str, endpoint: str, outcome: str, seconds: float) -> None:
        """One HTTP request to the exchange finished after `seconds` (budget waits excluded)."""

    def exchange_error(self, exchange: str, error_class: str) -> None:
        """An exchange-layer call failed with the named error (e.g. ExchangeUnavailable, CircuitOpen)."""

    def order_executed(self, exchange: str, mode: str, stage: str, seconds: float) -> None:
        """An order was acknowledged (stage ack) or filled (stage fill) `seconds` after it was submitted."""


class NullObserver:
    def exchange_request(self, exchange: str, endpoint: str, outcome: str, seconds: float) -> None:
        pass

    def exchange_error(self, exchange: str, error_class: str) -> None:
        pass

    def order_executed(self, exchange: str, mode: str, stage: str, seconds: float) -> None:
        pass


NULL_OBSERVER = NullObserver()

_ACCOUNT_WORDS = ("account", "balance", "mytrades", "capital", "apirestrictions", "asset")
_SYSTEM_WORDS = ("time", "ping", "status")


def endpoint_class(path: str) -> str:
    """The class of an exchange endpoint from its REST path (ccxt's `fetch2` path)."""
    lowered = path.lower()
    if "order" in lowered:
        return "order"
    if any(word in lowered for word in _ACCOUNT_WORDS):
        return "account"
    if any(lowered.rstrip("/").endswith(word) for word in _SYSTEM_WORDS):
        return "system"
    return "market_data"


def request_outcome(error: BaseException | None) -> str:
    """How a request ended, from the ccxt exception it raised (None: it succeeded)."""
    if error is None:
        return "ok"
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):  # 429, 418 (a ban)
        return "rate_limited"
    if isinstance(error, ccxt.InvalidNonce):
        return "rejected"  # a timestamp outside recvWindow: the exchange answered, our clock is off
    if isinstance(error, ccxt.NetworkError):
        return "error"
    if isinstance(error, ccxt.BaseError):
        return "rejected"
    return "error"


def observe_order(observer: ExchangeObserver, exchange: str, mode: str, submitted: float, order: Order) -> None:
    """Report an order's execution latency: acknowledged now; filled now if it finished with a fill.

    `submitted` is a `time.perf_counter()` reading. A resting limit order that fills later is not timed.
    """
    seconds = time.perf_counter() - submitted
    observer.order_executed(exchange, mode, "ack", seconds)
    if order.filled > 0 and order.status != "open":
        observer.order_executed(exchange, mode, "fill", seconds)

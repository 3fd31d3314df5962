"""The exchange layer's own exceptions, with messages a trader can act on, and the mapping from ccxt's.

Callers (the pipeline phases) catch these, never ccxt's: the phase that fails shows `str(error)` as the
reason, so every message says what happened and what to do about it. Messages never carry credentials:
`map_ccxt_error` strips query strings (they hold signatures) and masks the key and secret if an exchange
ever echoes them. What the remote side said is bounded and sanitised (`clean_message`): an exchange, or a
server posing as one, cannot write control characters, markup or kilobytes of text into a run's status and
Events.
"""

from __future__ import annotations

import re

import ccxt.async_support as ccxt


class ExchangeLayerError(Exception):
    """Base of every error the exchange layer raises. `transient` errors may succeed when retried."""

    transient: bool = False


class ExchangeUnavailable(ExchangeLayerError):
    """The exchange did not answer (network error, timeout, 5xx): usually passes, so it is retried."""

    transient = True


class ExchangeMaintenance(ExchangeUnavailable):
    """The exchange reports maintenance."""


class RateLimited(ExchangeUnavailable):
    """The exchange answered 429/418 (or -1003): the shared weight budget is paused until `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AuthenticationFailed(ExchangeLayerError):
    """The exchange rejected the API key or the signature."""


class PermissionDenied(AuthenticationFailed):
    """The key is valid but lacks a permission the call needs (or has one it must not have)."""


class ClockSkewError(ExchangeLayerError):
    """The local clock is too far from the exchange's for signed requests (Binance -1021).

    Transient: the connection re-measures the offset and signs with the exchange's time, so one NTP hiccup
    is corrected and retried instead of ending a session. The exchange refused the request before looking
    at it, so a rejected order was certainly not placed.
    """

    transient = True

    def __init__(self, message: str, offset_ms: int | None = None) -> None:
        super().__init__(message)
        self.offset_ms = offset_ms


class InsufficientFunds(ExchangeLayerError):
    """The account's free balance does not cover the order."""


class InvalidOrder(ExchangeLayerError):
    """The exchange rejected the order's parameters (lot size, min notional, price filter, ...)."""


class DuplicateOrder(InvalidOrder):
    """An order with this client order id exists already: resolved by looking the order up."""


class OrderNotFound(InvalidOrder):
    """The exchange does not know the order (Binance -2013)."""


class UnknownExchange(ExchangeLayerError):
    """The exchange id is not one ccxt knows: the run can never connect."""


class UnknownSymbol(ExchangeLayerError):
    """The symbol is not listed on the exchange."""


class NotSupportedByExchange(ExchangeLayerError):
    """The exchange (through ccxt) does not offer the operation."""


class ExchangeRejected(ExchangeLayerError):
    """Any other refusal by the exchange; the message carries the exchange's own words."""


class CircuitOpen(ExchangeUnavailable):
    """Calls fail fast because the last consecutive calls failed; names the error that opened the circuit."""

    transient = False  # retrying inside the cool-down is exactly what the breaker prevents

    def __init__(self, message: str, last_error: str | None = None, retry_in_s: float | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error
        self.retry_in_s = retry_in_s


class OrderOutcomeUnknown(ExchangeLayerError):
    """An order was sent, the answer was lost, and looking it up by client order id failed too.

    The order may or may not exist: the caller must not send a new order for the same intent; it can
    look it up later with the same client order id.
    """

    def __init__(self, message: str, client_order_id: str) -> None:
        super().__init__(message)
        self.client_order_id = client_order_id


_QUERY_RE = re.compile(r"(https?://[^\s?]+)\?\S*")
_CCXT_ID_PREFIX_RE = re.compile(r"^[a-z0-9]+ ")
_UNPRINTABLE_RE = re.compile(r"[^\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]+")  # controls, escapes, surrogates
_MARKUP_RE = re.compile(r"<[^>]{0,200}>")
MAX_REMOTE_TEXT = 300  # characters of what the remote side said that reach a message


def clean_message(text: str, secrets: tuple[str, ...] = (), limit: int = MAX_REMOTE_TEXT) -> str:
    """An exchange message fit for a status field or an Event: no query strings (they hold signatures), none
    of `secrets`, no control characters or markup, whitespace collapsed, at most `limit` characters."""
    cleaned = _QUERY_RE.sub(r"\1", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            cleaned = cleaned.replace(secret, "***")
    cleaned = _MARKUP_RE.sub(" ", _UNPRINTABLE_RE.sub(" ", cleaned))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def clock_skew_message(offset_ms: int, exchange_id: str, max_ms: int | None = None) -> str:
    """'local clock is 1800 ms ahead of binance ...': `offset_ms` is the exchange's time minus ours."""
    direction = "behind" if offset_ms > 0 else "ahead of"
    bound = f" (allowed: {max_ms} ms)" if max_ms is not None else ""
    return (
        f"local clock is {abs(offset_ms)} ms {direction} {exchange_id}{bound}: "
        "sync the node's clock with NTP (chrony/systemd-timesyncd) and retry"
    )


def map_ccxt_error(
    error: BaseException,
    *,
    exchange_id: str,
    credentials_hint: str = "the configured credentials",
    secrets: tuple[str, ...] = (),
    clock_offset_ms: int | None = None,
) -> ExchangeLayerError:
    """Our exception for a ccxt exception, with an actionable message.

    `credentials_hint` names where the keys come from ("Secret binance-keys"); `clock_offset_ms` is the last
    measured offset, quoted in the message of a -1021.
    """
    if isinstance(error, ExchangeLayerError):
        return error
    detail = clean_message(str(error), secrets)
    detail = _CCXT_ID_PREFIX_RE.sub("", detail, count=1) if detail.startswith(exchange_id) else detail
    code = _binance_code(detail)
    if isinstance(error, ccxt.InvalidNonce) or code == "-1021":
        if clock_offset_ms is not None:
            return ClockSkewError(
                f"{exchange_id} rejected the request timestamp (-1021): "
                + clock_skew_message(clock_offset_ms, exchange_id),
                clock_offset_ms,
            )
        return ClockSkewError(
            f"{exchange_id} rejected the request timestamp (-1021, outside recvWindow): the local clock differs "
            "from the exchange's; sync the node's clock with NTP (chrony/systemd-timesyncd) and retry"
        )
    if isinstance(error, ccxt.OnMaintenance):
        return ExchangeMaintenance(f"{exchange_id} is in maintenance: retry after the maintenance window ({detail})")
    if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded) or code == "-1003":
        return RateLimited(
            f"{exchange_id} rate limit hit ({detail}): requests are paused; lower the number of runs sharing "
            "this key or their polling rate"
        )
    if isinstance(error, ccxt.RequestTimeout):
        return ExchangeUnavailable(f"{exchange_id} did not answer in time ({detail}): check network or exchange status")
    if isinstance(error, ccxt.NetworkError):
        return ExchangeUnavailable(
            f"{exchange_id} is unreachable or failing ({detail}): check network or exchange status"
        )
    if isinstance(error, ccxt.PermissionDenied):
        return PermissionDenied(
            f"API key lacks a permission {exchange_id} requires ({detail}): enable it for the key in {credentials_hint}"
        )
    if isinstance(error, ccxt.AuthenticationError):
        return AuthenticationFailed(
            f"API key rejected by {exchange_id} ({detail}): check the key and secret in {credentials_hint}"
        )
    if isinstance(error, ccxt.InsufficientFunds):
        return InsufficientFunds(f"insufficient funds on {exchange_id}: {detail}")
    if isinstance(error, ccxt.DuplicateOrderId) or "duplicate order" in detail.lower():
        return DuplicateOrder(f"{exchange_id} already has an order with this client order id: {detail}")
    if isinstance(error, ccxt.OrderNotFound):
        return OrderNotFound(f"{exchange_id} does not know the order: {detail}")
    if isinstance(error, ccxt.InvalidOrder) or code == "-1013" or "filter failure" in detail.lower():
        return InvalidOrder(f"{exchange_id} rejected the order: {detail}")
    if isinstance(error, ccxt.BadSymbol):
        return UnknownSymbol(
            f"{exchange_id}: {detail}: check the symbol (e.g. BTC/USDT) against the exchange's markets"
        )
    if isinstance(error, ccxt.NotSupported):
        return NotSupportedByExchange(f"{exchange_id} does not support this through ccxt: {detail}")
    return ExchangeRejected(f"{exchange_id} refused the request: {detail}")


_CODE_RE = re.compile(r'"code"\s*:\s*(-?\d+)')


def _binance_code(detail: str) -> str | None:
    match = _CODE_RE.search(detail)
    return match.group(1) if match else None

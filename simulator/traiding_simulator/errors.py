"""Binance error answers: an HTTP status plus the `{"code": ..., "msg": ...}` body Binance sends.

The codes and messages are Binance's own, because ccxt maps them to its exception classes by code
and by exact message (e.g. "Account has insufficient balance for requested action." -> InsufficientFunds).
"""

from __future__ import annotations


class BinanceError(Exception):
    """An error answer; raised anywhere in a handler and rendered by the server middleware."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}


def unknown_error(msg: str = "An unknown error occured while processing the request.") -> BinanceError:
    return BinanceError(500, -1000, msg)


def too_many_requests(limit: int, retry_after_s: int) -> BinanceError:
    return BinanceError(
        429,
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API.",
        {"Retry-After": str(retry_after_s)},
    )


def banned(until_ms: int, retry_after_s: int) -> BinanceError:
    return BinanceError(
        418,
        -1003,
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
        {"Retry-After": str(retry_after_s)},
    )


def maintenance() -> BinanceError:
    return BinanceError(503, 1, "System is under maintenance.")


def timestamp_outside_recv_window() -> BinanceError:
    return BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def timestamp_ahead() -> BinanceError:
    return BinanceError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def invalid_signature() -> BinanceError:
    return BinanceError(400, -1022, "Signature for this request is not valid.")


def invalid_api_key() -> BinanceError:
    return BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def api_key_format_invalid() -> BinanceError:
    return BinanceError(401, -2014, "API-key format invalid.")


def missing_param(name: str) -> BinanceError:
    return BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def bad_param(name: str) -> BinanceError:
    return BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9.]+$'.")


def invalid_symbol() -> BinanceError:
    return BinanceError(400, -1121, "Invalid symbol.")


def invalid_interval() -> BinanceError:
    return BinanceError(400, -1120, "Invalid interval.")


def recv_window_too_large() -> BinanceError:
    return BinanceError(400, -1131, "recvWindow must be less than 60000")


def filter_failure(name: str) -> BinanceError:
    return BinanceError(400, -1013, f"Filter failure: {name}")


def insufficient_balance() -> BinanceError:
    return BinanceError(400, -2010, "Account has insufficient balance for requested action.")


def duplicate_order() -> BinanceError:
    return BinanceError(400, -2010, "Duplicate order sent.")


def order_rejected(msg: str) -> BinanceError:
    return BinanceError(400, -2010, msg)


def order_does_not_exist() -> BinanceError:
    return BinanceError(400, -2013, "Order does not exist.")


def unknown_order_sent() -> BinanceError:
    return BinanceError(400, -2011, "Unknown order sent.")


def invalid_order_type() -> BinanceError:
    return BinanceError(400, -1116, "Invalid orderType.")


def invalid_side() -> BinanceError:
    return BinanceError(400, -1117, "Invalid side.")


def trading_disabled_for_key() -> BinanceError:
    return BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")

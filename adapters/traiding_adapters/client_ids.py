"""Deterministic client order ids: the same intent of the same run always names the same order.

An id is derived from what the order is for (the run's uid and the intent's key: symbol, side, order type,
the candle it acts on, why, and which attempt), never from a counter kept in memory. After a lost answer, a
retry or an operator restart, the run asks the exchange for exactly that id: either the order exists, or it
was never placed. Binance accepts `^[a-zA-Z0-9-_]{1,36}$`; our ids are `t` + 32 hex digits of a hash.
"""

from __future__ import annotations

import hashlib
import re

CLIENT_ORDER_ID_RE = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")


def client_order_id(run_uid: str, intent_key: str) -> str:
    """The client order id of the order for `intent_key` (e.g. `ETH/USDT|buy|market|1700000000000|entry|0`)."""
    if not run_uid:
        raise ValueError("run_uid must not be empty")
    if not intent_key:
        raise ValueError("intent_key must not be empty")
    digest = hashlib.blake2b(f"{run_uid}\0{intent_key}".encode(), digest_size=16).hexdigest()
    return f"t{digest}"


def is_valid_client_order_id(value: str) -> bool:
    return bool(CLIENT_ORDER_ID_RE.fullmatch(value))

"""Deterministic client order ids: the same (run, sequence) always names the same order.

After a lost answer, a retry or an operator restart, the run asks again for order number `sequence` and gets
the same id, so the exchange can tell us whether that order exists instead of us sending a second one.
Binance accepts `^[a-zA-Z0-9-_]{1,36}$`; our ids are `t` + 16 hex digits of a hash of the run's uid + `-` +
the sequence in base 36, at most 32 characters.
"""

from __future__ import annotations

import hashlib
import re

CLIENT_ORDER_ID_RE = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_MAX_SEQUENCE = 36**13 - 1  # keeps the id within 32 characters


def client_order_id(run_uid: str, sequence: int) -> str:
    """The client order id of the `sequence`-th order (0, 1, ...) of the run with uid `run_uid`."""
    if not run_uid:
        raise ValueError("run_uid must not be empty")
    if sequence < 0 or sequence > _MAX_SEQUENCE:
        raise ValueError(f"sequence must be in 0..{_MAX_SEQUENCE}, got {sequence}")
    digest = hashlib.blake2b(run_uid.encode(), digest_size=8).hexdigest()
    return f"t{digest}-{_to_base36(sequence)}"


def is_valid_client_order_id(value: str) -> bool:
    return bool(CLIENT_ORDER_ID_RE.fullmatch(value))


def _to_base36(number: int) -> str:
    if number == 0:
        return "0"
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_BASE36[rest])
    return "".join(reversed(digits))

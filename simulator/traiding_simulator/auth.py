"""API keys and Binance's SIGNED request check: HMAC-SHA256 over the exact bytes sent, timestamp, recvWindow.

`timestamp` may be in milliseconds or microseconds, `recvWindow` a decimal with up to three places (microseconds),
as Binance's "Timing security" allows; both are compared in (fractional) milliseconds.

Binance signs `totalParams`: the query string concatenated (no separator) with the request body, both as
sent on the wire and without the `signature` parameter. ccxt puts everything in the query for GET/DELETE
and in a form body for POST, so one of the two is empty there.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from decimal import Decimal

from traiding_simulator import errors
from traiding_simulator.config import ApiKeyConfig

# Epoch times at or above this are microseconds: in milliseconds it would be the year 33658.
MICROSECONDS_FROM = 10**15
_RECV_WINDOW = re.compile(r"[0-9]+(\.[0-9]{1,3})?")


def epoch_ms(value: int) -> Decimal:
    """A timestamp parameter in milliseconds, given in milliseconds or microseconds."""
    return Decimal(value) / 1000 if value >= MICROSECONDS_FROM else Decimal(value)


def strip_signature(raw: str) -> tuple[str, str | None]:
    """(the raw parameter string without its `signature=` part, the signature or None)."""
    if not raw:
        return raw, None
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class KeyStore:
    def __init__(self, keys: Iterable[ApiKeyConfig] = ()) -> None:
        self._keys: dict[str, ApiKeyConfig] = {}
        for key in keys:
            self.put(key)

    def put(self, key: ApiKeyConfig) -> None:
        self._keys[key.key] = key

    def remove(self, key: str) -> bool:
        return self._keys.pop(key, None) is not None

    def get(self, key: str) -> ApiKeyConfig | None:
        return self._keys.get(key)

    def __len__(self) -> int:
        return len(self._keys)

    def public_view(self) -> list[dict[str, object]]:
        """The keys without their secrets."""
        return [k.model_dump(exclude={"secret"}) for k in self._keys.values()]

    def api_key(self, header: str | None) -> ApiKeyConfig:
        """The key named by the X-MBX-APIKEY header (USER_DATA/TRADE/USER_STREAM endpoints)."""
        if not header:
            raise errors.api_key_format_invalid()
        key = self._keys.get(header)
        if key is None:
            raise errors.invalid_api_key()
        return key

    def verify(
        self,
        header: str | None,
        *,
        raw_query: str,
        raw_body: str,
        params: dict[str, str],
        server_time_ms: int,
        max_recv_window_ms: int,
        default_recv_window_ms: int,
    ) -> ApiKeyConfig:
        key = self.api_key(header)
        if not key.can_read:
            raise errors.invalid_api_key()
        query, query_signature = strip_signature(raw_query)
        body, body_signature = strip_signature(raw_body)
        signature = query_signature or body_signature
        if not signature:
            raise errors.missing_param("signature")
        expected = sign(key.secret.get_secret_value(), query + body)
        if not hmac.compare_digest(expected, signature.lower()):
            raise errors.invalid_signature()
        timestamp_text = params.get("timestamp")
        if not timestamp_text:
            raise errors.missing_param("timestamp")
        try:
            timestamp = epoch_ms(int(timestamp_text))
        except ValueError:
            raise errors.bad_param("timestamp") from None
        recv_text = params.get("recvWindow") or str(default_recv_window_ms)
        if not _RECV_WINDOW.fullmatch(recv_text):
            raise errors.bad_param("recvWindow")
        recv_window = Decimal(recv_text)
        if recv_window > max_recv_window_ms or recv_window <= 0:
            raise errors.recv_window_too_large()
        if timestamp >= server_time_ms + 1000:
            raise errors.timestamp_ahead()
        if server_time_ms - timestamp > recv_window:
            raise errors.timestamp_outside_recv_window()
        return key

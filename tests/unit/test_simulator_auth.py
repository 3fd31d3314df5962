"""Binance's SIGNED check: HMAC over the exact query + body, timestamps and recvWindow."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

import pytest
from pydantic import SecretStr

from traiding_simulator.auth import KeyStore, sign, strip_signature
from traiding_simulator.config import ApiKeyConfig
from traiding_simulator.errors import BinanceError

NOW = 1_800_000_000_000


@pytest.fixture
def keys() -> KeyStore:
    return KeyStore(
        [
            ApiKeyConfig(key="key", secret=SecretStr("secret")),
            ApiKeyConfig(key="blind", secret=SecretStr("s2"), can_read=False),
        ]
    )


def verify(keys: KeyStore, query: str, body: str = "", key: str | None = "key", recv_max: int = 60_000) -> str:
    params = dict(parse_qsl(strip_signature(query)[0])) | dict(parse_qsl(strip_signature(body)[0]))
    found = keys.verify(
        key,
        raw_query=query,
        raw_body=body,
        params=params,
        server_time_ms=NOW,
        max_recv_window_ms=recv_max,
        default_recv_window_ms=5000,
    )
    return found.key


def signed(payload: str, secret: str = "secret") -> str:
    return f"{payload}&signature={sign(secret, payload)}"


def code_of(call: object) -> int:
    assert isinstance(call, BinanceError)
    return call.code


def test_sign_is_hmac_sha256_hex() -> None:
    expected = hmac.new(b"secret", b"a=1&b=2", hashlib.sha256).hexdigest()
    assert sign("secret", "a=1&b=2") == expected


def test_strip_signature_keeps_the_rest_in_order() -> None:
    assert strip_signature("a=1&signature=ff&b=2") == ("a=1&b=2", "ff")
    assert strip_signature("a=1") == ("a=1", None)
    assert strip_signature("") == ("", None)


def test_a_correctly_signed_query_passes(keys: KeyStore) -> None:
    assert verify(keys, signed(f"symbol=BTCUSDT&timestamp={NOW}")) == "key"


def test_a_signed_body_and_a_split_query_plus_body_pass(keys: KeyStore) -> None:
    assert verify(keys, "", signed(f"symbol=BTCUSDT&side=BUY&timestamp={NOW}")) == "key"
    query, body = "symbol=BTCUSDT&side=BUY", f"quantity=1&timestamp={NOW}"
    # Binance concatenates query and body without a separator before signing
    assert verify(keys, query, f"{body}&signature={sign('secret', query + body)}") == "key"


def test_the_signature_covers_the_bytes_as_sent(keys: KeyStore) -> None:
    payload = f"symbol=BTCUSDT&timestamp={NOW}"
    tampered = signed(payload).replace("BTCUSDT", "ETHUSDT")
    with pytest.raises(BinanceError) as err:
        verify(keys, tampered)
    assert (err.value.code, err.value.status) == (-1022, 400)


def test_a_wrong_secret_is_an_invalid_signature(keys: KeyStore) -> None:
    with pytest.raises(BinanceError) as err:
        verify(keys, signed(f"timestamp={NOW}", secret="wrong"))
    assert err.value.code == -1022
    assert err.value.msg == "Signature for this request is not valid."


def test_unknown_missing_and_unreadable_keys(keys: KeyStore) -> None:
    with pytest.raises(BinanceError) as err:
        verify(keys, signed(f"timestamp={NOW}"), key="nobody")
    assert (err.value.code, err.value.status) == (-2015, 401)
    with pytest.raises(BinanceError) as err:
        verify(keys, signed(f"timestamp={NOW}"), key=None)
    assert err.value.code == -2014
    with pytest.raises(BinanceError) as err:
        verify(keys, signed(f"timestamp={NOW}", secret="s2"), key="blind")
    assert err.value.code == -2015


@pytest.mark.parametrize(
    ("timestamp", "recv_window", "code"),
    [
        (NOW - 4_999, None, None),  # inside the default 5000 ms window
        (NOW - 5_001, None, -1021),  # outside it
        (NOW - 9_000, "10000", None),  # a larger window sent by the client
        (NOW + 999, None, None),  # slightly ahead is tolerated
        (NOW + 1_000, None, -1021),  # 1000 ms ahead is not
        (NOW, "60001", -1131),  # recvWindow above the maximum
        # as Binance documents them: timestamps in microseconds, recvWindow with up to three decimals
        (NOW * 1000 - 4_999_999, None, None),  # microseconds, 4.999999 s old: inside the default 5000 ms
        (NOW * 1000 - 5_000_001, None, -1021),  # a microsecond past it
        (NOW * 1000 + 999_999, None, None),  # microseconds, just under a second ahead
        (NOW - 6000, "6000.346", None),  # a decimal recvWindow: microseconds of window
        (NOW * 1000 - 6_000_347, "6000.346", -1021),  # ... and one microsecond beyond it
        (NOW, "6000.3456", -1100),  # more than three decimals
        (NOW, "60000.001", -1131),  # above the maximum
    ],
)
def test_timestamp_and_recv_window(keys: KeyStore, timestamp: int, recv_window: str | None, code: int | None) -> None:
    payload = f"symbol=BTCUSDT&timestamp={timestamp}" + (f"&recvWindow={recv_window}" if recv_window else "")
    if code is None:
        assert verify(keys, signed(payload)) == "key"
    else:
        with pytest.raises(BinanceError) as err:
            verify(keys, signed(payload))
        assert err.value.code == code


def test_missing_signature_or_timestamp_are_mandatory_parameters(keys: KeyStore) -> None:
    with pytest.raises(BinanceError) as err:
        verify(keys, f"timestamp={NOW}")
    assert err.value.code == -1102 and "signature" in err.value.msg
    with pytest.raises(BinanceError) as err:
        verify(keys, signed("symbol=BTCUSDT"))
    assert err.value.code == -1102 and "timestamp" in err.value.msg


def test_public_view_hides_secrets(keys: KeyStore) -> None:
    view = keys.public_view()
    assert [k["key"] for k in view] == ["key", "blind"]
    assert all("secret" not in k for k in view)

"""Mapping ccxt's exceptions to ours, with messages a trader can act on and no secrets in them."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from traiding_adapters import errors
from traiding_adapters.errors import clean_message, map_ccxt_error


def mapped(error: Exception, **kwargs: object) -> errors.ExchangeLayerError:
    return map_ccxt_error(error, exchange_id="binance", **kwargs)  # type: ignore[arg-type]


def test_authentication_names_the_secret_never_its_value() -> None:
    secret = "s3cr3t-VALUE-abcdef"
    error = mapped(
        ccxt.AuthenticationError(f'binance {{"code":-1022,"msg":"Signature for this request is not valid."}} {secret}'),
        credentials_hint="Secret binance-keys",
        secrets=(secret,),
    )
    assert isinstance(error, errors.AuthenticationFailed)
    message = str(error)
    assert "API key rejected by binance" in message
    assert "check the key and secret in Secret binance-keys" in message
    assert secret not in message


def test_query_strings_with_signatures_are_dropped() -> None:
    text = "binance GET https://api.binance.com/api/v3/account?timestamp=1&signature=abcdef0123 503"
    assert "signature" not in clean_message(text)
    assert "https://api.binance.com/api/v3/account" in clean_message(text)


def test_what_the_remote_side_said_is_bounded_and_stripped_of_controls_and_markup() -> None:
    body = "<html><script>alert(1)</script>" + "\x1b[31mred\x00\r\n" + "A" * 5000 + "</html>"
    cleaned = clean_message(body)
    assert len(cleaned) <= errors.MAX_REMOTE_TEXT and cleaned.endswith("…")
    assert "<" not in cleaned and "\x1b" not in cleaned and "\x00" not in cleaned and "\n" not in cleaned
    error = mapped(ccxt.ExchangeError(f"binance {body}"))
    assert len(str(error)) < errors.MAX_REMOTE_TEXT + 100 and "<script>" not in str(error)


def test_the_api_key_an_exchange_echoes_is_masked_too() -> None:
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    error = mapped(ccxt.AuthenticationError(f'binance {{"msg":"API-key {key} format invalid."}}'), secrets=(key,))
    assert key not in str(error) and "***" in str(error)


def test_invalid_nonce_becomes_clock_skew_with_the_measured_offset() -> None:
    error = mapped(
        ccxt.InvalidNonce('binance {"code":-1021,"msg":"Timestamp for this request is outside of the recvWindow."}'),
        clock_offset_ms=-1800,
    )
    assert isinstance(error, errors.ClockSkewError)
    assert "1800 ms ahead of binance" in str(error)
    assert "NTP" in str(error)
    assert error.transient  # the connection corrects the clock; the phase retries: one NTP hiccup is not fatal


def test_minus_1021_without_a_measurement_still_says_what_to_do() -> None:
    error = mapped(ccxt.ExchangeError('binance {"code":-1021,"msg":"Timestamp ..."}'))
    assert isinstance(error, errors.ClockSkewError)
    assert "NTP" in str(error)


@pytest.mark.parametrize(
    ("error", "expected", "transient"),
    [
        (ccxt.OnMaintenance("binance System is under maintenance."), errors.ExchangeMaintenance, True),
        (ccxt.DDoSProtection("binance 429"), errors.RateLimited, True),
        (ccxt.RateLimitExceeded("binance -1003"), errors.RateLimited, True),
        (ccxt.RequestTimeout("binance GET url"), errors.ExchangeUnavailable, True),
        (ccxt.ExchangeNotAvailable("binance 503"), errors.ExchangeUnavailable, True),
        (ccxt.PermissionDenied("binance no trade"), errors.PermissionDenied, False),
        (ccxt.InsufficientFunds("binance balance"), errors.InsufficientFunds, False),
        (ccxt.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}'), errors.OrderNotFound, False),
        (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'), errors.DuplicateOrder, False),
        (ccxt.DuplicateOrderId("binance dup"), errors.DuplicateOrder, False),
        (ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"), errors.InvalidOrder, False),
        (ccxt.BadRequest('binance {"code":-1013,"msg":"Filter failure: NOTIONAL"}'), errors.InvalidOrder, False),
        (ccxt.BadSymbol("binance does not have market symbol FOO/BAR"), errors.UnknownSymbol, False),
        (ccxt.NotSupported("binance fetchX() not supported"), errors.NotSupportedByExchange, False),
        (ccxt.ExchangeError("binance something else"), errors.ExchangeRejected, False),
    ],
)
def test_mapping(error: Exception, expected: type[errors.ExchangeLayerError], transient: bool) -> None:
    result = mapped(error)
    assert type(result) is expected
    assert result.transient is transient
    assert str(result)


def test_our_errors_pass_through() -> None:
    original = errors.InvalidOrder("x")
    assert mapped(original) is original

"""Credentials from a Secret's data: errors name the Secret and key, never a value."""

from __future__ import annotations

import base64

import pytest

from traiding.resource import SecretRef
from traiding_operator.credentials import CredentialsError, credentials_from_secret_data

REF = SecretRef(name="binance-keys")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_are_decoded_and_name_their_source() -> None:
    credentials = credentials_from_secret_data({"apiKey": b64("key-1"), "secret": b64("s3cret\n")}, REF, "ns")
    assert (credentials.api_key, credentials.secret, credentials.source) == ("key-1", "s3cret", "Secret binance-keys")
    assert "s3cret" not in repr(credentials)


def test_custom_key_names_are_used() -> None:
    ref = SecretRef(name="keys", apiKeyKey="key", secretKey="private")
    credentials = credentials_from_secret_data({"key": b64("k"), "private": b64("p")}, ref, "ns")
    assert (credentials.api_key, credentials.secret) == ("k", "p")


def test_a_missing_key_names_the_secret_the_key_and_the_keys_present() -> None:
    with pytest.raises(CredentialsError) as info:
        credentials_from_secret_data({"apiKey": b64("key-1"), "other": b64("x")}, REF, "team-a")
    assert str(info.value) == "Secret binance-keys in namespace team-a has no key 'secret' (keys: apiKey, other)"


def test_a_secret_without_data_names_the_first_missing_key() -> None:
    with pytest.raises(CredentialsError, match="has no key 'apiKey' \\(keys: none\\)"):
        credentials_from_secret_data(None, REF, "ns")


def test_a_value_that_is_not_base64_is_refused_without_showing_it() -> None:
    with pytest.raises(CredentialsError) as info:
        credentials_from_secret_data({"apiKey": b64("key-1"), "secret": "not*base64!"}, REF, "ns")
    assert "key 'secret' is not base64-encoded UTF-8" in str(info.value)
    assert "not*base64!" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_empty_value_is_refused() -> None:
    with pytest.raises(CredentialsError, match="key 'apiKey' is empty"):
        credentials_from_secret_data({"apiKey": b64("  "), "secret": b64("s")}, REF, "ns")

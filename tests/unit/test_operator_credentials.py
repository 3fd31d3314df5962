"""Credentials from a Secret: fixed key names, optional Fernet encryption under the operator's keys, and errors
that name the Secret and key, never a value or what else the Secret holds."""

from __future__ import annotations

import base64

import pytest

from traiding.key_encryption import ENCRYPTION_ANNOTATION, KeyRing, generate_key
from traiding.resource import SecretRef
from traiding_operator.credentials import CredentialsError, KeysPolicy, credentials_from_secret

REF = SecretRef(name="binance-keys")
ENCRYPTED = {ENCRYPTION_ANNOTATION: "fernet"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_data(**values: str) -> dict[str, str]:
    return {key: b64(value) for key, value in values.items()}


def test_credentials_are_decoded_and_name_their_source() -> None:
    data = secret_data(apiKey="key-1", secret="s3cret\n")
    credentials = credentials_from_secret(data, None, REF, "ns")
    assert (credentials.api_key, credentials.secret, credentials.source) == ("key-1", "s3cret", "Secret binance-keys")
    assert credentials.password is None
    assert "s3cret" not in repr(credentials) and "key-1" not in repr(credentials)  # no key material in a repr


def test_an_optional_passphrase_is_read_under_its_fixed_key() -> None:
    data = secret_data(apiKey="k", secret="s", passphrase="p4ss")
    credentials = credentials_from_secret(data, None, REF, "ns")
    assert credentials.password == "p4ss" and "p4ss" not in repr(credentials)


def test_a_missing_key_names_the_secret_and_the_key_but_not_what_else_it_holds() -> None:
    with pytest.raises(CredentialsError) as info:
        credentials_from_secret(secret_data(apiKey="key-1", stripeToken="x"), None, REF, "team-a")
    assert str(info.value) == (
        "Secret binance-keys in namespace team-a has no key 'secret' "
        "(a credentials Secret holds apiKey, secret and optionally passphrase)"
    )
    assert "stripeToken" not in str(info.value)


def test_a_secret_without_data_names_the_first_missing_key() -> None:
    with pytest.raises(CredentialsError, match="has no key 'apiKey'"):
        credentials_from_secret(None, None, REF, "ns")


def test_a_value_that_is_not_base64_is_refused_without_showing_it() -> None:
    with pytest.raises(CredentialsError) as info:
        credentials_from_secret({"apiKey": b64("key-1"), "secret": "not*base64!"}, None, REF, "ns")
    assert "key 'secret' is not base64-encoded UTF-8" in str(info.value)
    assert "not*base64!" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_an_empty_value_is_refused() -> None:
    with pytest.raises(CredentialsError, match="key 'apiKey' is empty"):
        credentials_from_secret(secret_data(apiKey="  ", secret="s"), None, REF, "ns")


def test_an_encrypted_secret_is_decrypted_with_any_of_the_operator_keys() -> None:
    old, new = generate_key(), generate_key()
    under_old = KeyRing([old])
    data = secret_data(apiKey=under_old.encrypt("key-1"), secret=under_old.encrypt("s3cret"))
    policy = KeysPolicy(KeyRing([new, old]), "Secret traiding-keys in namespace ops")
    credentials = credentials_from_secret(data, ENCRYPTED, REF, "ns", policy)
    assert (credentials.api_key, credentials.secret) == ("key-1", "s3cret")


def test_an_encrypted_secret_with_a_wrong_key_fails_saying_where_the_keys_come_from() -> None:
    data = secret_data(apiKey=KeyRing([generate_key()]).encrypt("key-1"), secret="whatever")
    policy = KeysPolicy(KeyRing([generate_key()]), "Secret traiding-keys in namespace ops")
    with pytest.raises(CredentialsError) as info:
        credentials_from_secret(data, ENCRYPTED, REF, "ns", policy)
    message = str(info.value)
    assert (
        "key 'apiKey' cannot be decrypted with the operator's keys (Secret traiding-keys in namespace ops)" in message
    )
    assert "traiding keys encrypt" in message


def test_an_encrypted_secret_without_operator_keys_says_how_to_configure_them() -> None:
    data = secret_data(apiKey="token", secret="token")
    with pytest.raises(CredentialsError, match="the operator has no keys to decrypt it: set TRAIDING_KEYS_SECRET"):
        credentials_from_secret(data, ENCRYPTED, REF, "ns", KeysPolicy())


def test_a_plain_secret_is_refused_where_encryption_is_required() -> None:
    policy = KeysPolicy(KeyRing([generate_key()]), "Secret k", require_encrypted=True)
    with pytest.raises(CredentialsError, match="is not encrypted, and this operator takes encrypted keys only"):
        credentials_from_secret(secret_data(apiKey="k", secret="s"), None, REF, "ns", policy)


def test_an_unknown_encryption_scheme_is_refused() -> None:
    with pytest.raises(CredentialsError, match="the only scheme is fernet"):
        credentials_from_secret(secret_data(apiKey="k", secret="s"), {ENCRYPTION_ANNOTATION: "rot13"}, REF, "ns")

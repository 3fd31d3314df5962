"""Exchange credentials from the Secret a run names, decrypted when the Secret holds Fernet tokens.

A credentials Secret has fixed keys: `apiKey`, `secret` and, where the exchange needs one, `passphrase`; a
run cannot point the operator at any other key of any other Secret. With the annotation
`traiding.io/encryption: fernet` the values are Fernet tokens, decrypted with the keys of the operator's keys
Secret (`TRAIDING_KEYS_SECRET`). The values never leave this module except inside `Credentials` (whose repr
shows none of them); errors name the Secret and the key, never a value, and never list what else a Secret holds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from traiding.key_encryption import ENCRYPTION_ANNOTATION, FERNET, KEYS_DATA_KEY, KeyRing, KeyRingError
from traiding.resource import PASSPHRASE_KEY, SECRET_KEYS, SecretRef
from traiding.telemetry.logs import register_secret
from traiding_adapters.connection import Credentials
from traiding_operator.kube import KubeCalls

API_KEY, SECRET = SECRET_KEYS
KEYS_FORMAT = f"a credentials Secret holds {API_KEY}, {SECRET} and optionally {PASSPHRASE_KEY}"


class CredentialsError(Exception):
    """The run's credentials cannot be read; the message says which Secret and key, and what to do."""


@dataclass(frozen=True)
class KeysPolicy:
    """How the operator treats credentials Secrets: the keys that decrypt them (None: none configured), where
    those keys come from (for messages), and whether a Secret must be encrypted."""

    keyring: KeyRing | None = None
    source: str = "TRAIDING_KEYS_SECRET (not set)"
    require_encrypted: bool = False


def _decode(data: Mapping[str, str], where: str, key: str) -> str | None:
    encoded = data.get(key)
    if encoded is None:
        return None
    try:
        value = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsError(f"{where}: key {key!r} is not base64-encoded UTF-8") from None  # the cause has the value
    if not value:
        raise CredentialsError(f"{where}: key {key!r} is empty")
    return value


def _required(value: str | None, where: str, key: str) -> str:
    if value is None:
        raise CredentialsError(f"{where} has no key {key!r} ({KEYS_FORMAT})")
    return value


def _decrypt(value: str | None, where: str, key: str, policy: KeysPolicy) -> str | None:
    if value is None:
        return None
    if policy.keyring is None:
        raise CredentialsError(
            f"{where} is encrypted ({ENCRYPTION_ANNOTATION}: {FERNET}) but the operator has no keys to decrypt it: "
            "set TRAIDING_KEYS_SECRET (the chart's keyEncryption.secretName)"
        )
    try:
        return policy.keyring.decrypt(value)
    except KeyRingError as error:
        raise CredentialsError(
            f"{where}: key {key!r} cannot be decrypted with the operator's keys ({policy.source}): {error}; "
            "encrypt it again with `traiding keys encrypt`, or add the key it was encrypted with"
        ) from None


def credentials_from_secret(
    data: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
    ref: SecretRef,
    namespace: str,
    policy: KeysPolicy | None = None,
) -> Credentials:
    """`Credentials` from a Secret's `data` (base64 values, as the API returns them) and its annotations."""
    data, annotations, policy = data or {}, annotations or {}, policy or KeysPolicy()
    where = f"Secret {ref.name} in namespace {namespace}"
    values = {key: _decode(data, where, key) for key in (API_KEY, SECRET, PASSPHRASE_KEY)}
    encryption = annotations.get(ENCRYPTION_ANNOTATION)
    if encryption is not None:
        if encryption != FERNET:
            raise CredentialsError(f"{where}: {ENCRYPTION_ANNOTATION} is {encryption!r}; the only scheme is {FERNET}")
        values = {key: _decrypt(value, where, key, policy) for key, value in values.items()}
    elif policy.require_encrypted:
        raise CredentialsError(
            f"{where} is not encrypted, and this operator takes encrypted keys only (TRAIDING_REQUIRE_ENCRYPTED_KEYS):"
            f" encrypt it with `traiding keys encrypt` and annotate it {ENCRYPTION_ANNOTATION}: {FERNET}"
        )
    credentials = Credentials(
        api_key=_required(values[API_KEY], where, API_KEY),
        secret=_required(values[SECRET], where, SECRET),
        password=values[PASSPHRASE_KEY],
        source=f"Secret {ref.name}",
    )
    register_secret(credentials.api_key, credentials.secret, credentials.password)  # redacted from every log line
    return credentials


async def _read_secret(kube: KubeCalls, namespace: str, name: str, what: str) -> tuple[dict[str, str], dict[str, str]]:
    try:
        secret = await kube.call(CoreV1Api(kube.api).read_namespaced_secret, name, namespace)
    except ApiException as error:
        if error.status == 404:
            raise CredentialsError(f"{what}: Secret {name} not found in namespace {namespace}") from None
        if error.status == 403:
            raise CredentialsError(
                f"{what}: the operator may not read Secret {name} in namespace {namespace} (RBAC)"
            ) from None
        raise
    # The API returns `data` base64-encoded as text.
    data = {key: str(value) for key, value in (secret.data or {}).items()}
    annotations = dict((secret.metadata.annotations if secret.metadata else None) or {})
    return data, annotations


async def read_keys_policy(
    kube: KubeCalls, namespace: str | None, keys_secret: str | None, *, require_encrypted: bool
) -> KeysPolicy:
    """The operator's encryption keys, read from their Secret each time (a rotation needs no restart)."""
    if not keys_secret or not namespace:
        return KeysPolicy(require_encrypted=require_encrypted)
    source = f"Secret {keys_secret} in namespace {namespace}"
    data, _ = await _read_secret(kube, namespace, keys_secret, "the operator's encryption keys")
    text = _decode(data, source, KEYS_DATA_KEY)
    if text is None:
        raise CredentialsError(f"the operator's encryption keys: {source} has no key {KEYS_DATA_KEY!r}")
    try:
        keyring = KeyRing.from_text(text)
    except KeyRingError as error:
        raise CredentialsError(f"the operator's encryption keys in {source}: {error}") from None
    return KeysPolicy(keyring, source, require_encrypted)


async def read_credentials(kube: KubeCalls, namespace: str, ref: SecretRef, policy: KeysPolicy) -> Credentials:
    data, annotations = await _read_secret(kube, namespace, ref.name, "the run's credentials")
    return credentials_from_secret(data, annotations, ref, namespace, policy)

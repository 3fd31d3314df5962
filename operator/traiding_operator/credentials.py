"""Exchange credentials from the Secret a run names. The values never leave this module except inside
`Credentials` (whose repr hides the secret); errors name the Secret and the key, never a value."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from traiding.resource import SecretRef
from traiding.telemetry.logs import register_secret
from traiding_adapters.connection import Credentials
from traiding_operator.kube import KubeCalls


class CredentialsError(Exception):
    """The run's credentials cannot be read; the message says which Secret and key, and what to do."""


def _decode(data: Mapping[str, str], ref: SecretRef, key: str, namespace: str) -> str:
    encoded = data.get(key)
    if encoded is None:
        present = ", ".join(sorted(data)) or "none"
        raise CredentialsError(f"Secret {ref.name} in namespace {namespace} has no key {key!r} (keys: {present})")
    try:
        value = base64.b64decode(encoded, validate=True).decode("utf-8").strip()
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsError(
            f"Secret {ref.name} in namespace {namespace}: key {key!r} is not base64-encoded UTF-8"
        ) from None  # the cause would carry the value
    if not value:
        raise CredentialsError(f"Secret {ref.name} in namespace {namespace}: key {key!r} is empty")
    return value


def credentials_from_secret_data(data: Mapping[str, str] | None, ref: SecretRef, namespace: str) -> Credentials:
    """`Credentials` from a Secret's `data` (base64 values, as the API returns them)."""
    data = data or {}
    credentials = Credentials(
        api_key=_decode(data, ref, ref.apiKeyKey, namespace),
        secret=_decode(data, ref, ref.secretKey, namespace),
        source=f"Secret {ref.name}",
    )
    register_secret(credentials.api_key, credentials.secret)  # redacted from every log line from now on
    return credentials


async def read_credentials(kube: KubeCalls, namespace: str, ref: SecretRef) -> Credentials:
    try:
        secret = await kube.call(CoreV1Api(kube.api).read_namespaced_secret, ref.name, namespace)
    except ApiException as error:
        if error.status == 404:
            raise CredentialsError(f"Secret {ref.name} not found in namespace {namespace}") from None
        if error.status == 403:
            raise CredentialsError(
                f"the operator may not read Secret {ref.name} in namespace {namespace} (RBAC)"
            ) from None
        raise
    # The API returns `data` base64-encoded as text.
    data: Mapping[str, str] = {key: str(value) for key, value in (secret.data or {}).items()}
    return credentials_from_secret_data(data, ref, namespace)

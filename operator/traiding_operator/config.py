"""The operator's settings: typed, from its environment (the chart sets them from its values) or a `.env` file.

`traiding operator` loads them before anything starts and refuses a bad value naming its variable
(`TRAIDING_SIMULATORS: ...`). See `.env.example` for every variable with an example value.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from traiding.settings import ENV_PREFIX, NAME_PATTERN, EndpointSettings

IDENTITY_ENV = f"{ENV_PREFIX}OPERATOR_IDENTITY"
DNS_NAME = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=253)]


def default_identity() -> str:
    """Unique per process: two processes must never share an identity by accident (both would drive). A
    Deployment sets TRAIDING_OPERATOR_IDENTITY to the Pod's name, so a restarted container takes its runs back
    at once instead of waiting for their Leases to expire."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "ai-traiding" / "candles"


class OperatorSettings(EndpointSettings):
    """Everything `traiding operator` reads from its environment (the endpoints runs may use, see
    `traiding.settings`, and the operator's own settings)."""

    cache_dir: Path = Field(default_factory=default_cache_dir)  # the candle cache shared by this operator's runs
    operator_identity: str = Field(default_factory=default_identity, min_length=1)  # holder of its Leases
    # Where the operator runs: the cluster-wide kill switch and the keys Secret live here (the chart sets it).
    operator_namespace: DNS_NAME | None = None
    # How often the kill switches are read (each namespace's and the cluster-wide one, shared by every run).
    kill_switch_poll_seconds: float = Field(default=1.0, gt=0, le=10)
    # A Secret in operator_namespace whose `keys` holds the Fernet keys credentials Secrets are encrypted with.
    keys_secret: DNS_NAME | None = None
    # Refuse credentials Secrets that are not encrypted with those keys.
    require_encrypted_keys: bool = False
    # Processes for the phases' CPU work (candle parsing, backtests): None the CPUs it may use, 0 inline.
    cpu_workers: int | None = Field(default=None, ge=0, le=64)
    metrics_port: int = Field(default=8000, ge=0, le=65535)
    metrics_address: str = "0.0.0.0"  # nosec B104  # in a container the Service and Prometheus reach the Pod on it

    @model_validator(mode="after")
    def _keys_need_their_namespace(self) -> OperatorSettings:
        if self.keys_secret and not self.operator_namespace:
            raise ValueError(
                f"{ENV_PREFIX}KEYS_SECRET needs {ENV_PREFIX}OPERATOR_NAMESPACE, the namespace that Secret is in"
            )
        if self.require_encrypted_keys and not self.keys_secret:
            raise ValueError(
                f"{ENV_PREFIX}REQUIRE_ENCRYPTED_KEYS needs {ENV_PREFIX}KEYS_SECRET, the Secret with the keys"
            )
        return self

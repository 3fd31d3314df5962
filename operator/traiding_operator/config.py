"""The operator's own configuration, from its environment (a Deployment sets these)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SIMULATOR_URL_ENV = "TRAIDING_SIMULATOR_URL"
CACHE_DIR_ENV = "TRAIDING_CACHE_DIR"
IDENTITY_ENV = "TRAIDING_OPERATOR_IDENTITY"


def default_identity() -> str:
    """Unique per process: two processes must never share an identity by accident (both would drive). A
    Deployment sets TRAIDING_OPERATOR_IDENTITY to the Pod's name, so a restarted container takes its runs back
    at once instead of waiting for their Leases to expire."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class OperatorConfig:
    simulator_url: str | None  # for runs against the simulator whose spec names no URL
    cache_dir: Path  # candle cache shared by the runs of this operator
    identity: str  # the holder identity of this process's Leases

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        cache = env.get(CACHE_DIR_ENV) or str(Path.home() / ".cache" / "ai-traiding" / "candles")
        return cls(
            simulator_url=env.get(SIMULATOR_URL_ENV) or None,
            cache_dir=Path(cache),
            identity=env.get(IDENTITY_ENV) or default_identity(),
        )

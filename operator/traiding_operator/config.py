"""The operator's own configuration, from its environment (a Deployment sets these)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from traiding.errors import UserError

SIMULATOR_URL_ENV = "TRAIDING_SIMULATOR_URL"
CACHE_DIR_ENV = "TRAIDING_CACHE_DIR"
IDENTITY_ENV = "TRAIDING_OPERATOR_IDENTITY"
CPU_WORKERS_ENV = "TRAIDING_CPU_WORKERS"
MAX_CPU_WORKERS = 64


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
    cpu_workers: int | None = None  # processes for the phases' CPU work; None: the CPUs it may use, 0: inline

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        cache = env.get(CACHE_DIR_ENV) or str(Path.home() / ".cache" / "ai-traiding" / "candles")
        workers = env.get(CPU_WORKERS_ENV, "").strip()
        if workers and not (workers.isdigit() and int(workers) <= MAX_CPU_WORKERS):
            raise UserError(f"{CPU_WORKERS_ENV} must be a whole number from 0 to {MAX_CPU_WORKERS}, got {workers!r}")
        return cls(
            simulator_url=env.get(SIMULATOR_URL_ENV) or None,
            cache_dir=Path(cache),
            identity=env.get(IDENTITY_ENV) or default_identity(),
            cpu_workers=int(workers) if workers else None,
        )

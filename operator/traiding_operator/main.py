"""Running the operator: in-process (tests, embedding) or from `traiding operator`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection

import kopf

import traiding_operator.handlers  # noqa: F401 - registers the handlers with kopf's default registry
from traiding.telemetry.metrics import Metrics


async def run_operator(
    *,
    namespaces: Collection[str] = (),
    clusterwide: bool = False,
    standalone: bool = True,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    liveness_endpoint: str | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Serve TradingRuns in `namespaces` (or all, with `clusterwide`) until `stop_flag` is set.

    `standalone` skips kopf's peering (leader-like coordination between operator replicas), which needs
    kopf's peering CRDs; run one replica. `liveness_endpoint` (e.g. http://0.0.0.0:8080/healthz) serves
    kopf's health endpoint, which answers while the operator's watch streams and tasks run. `metrics`
    collects what the runs and the exchange layer report (serve its registry to expose them); without it the
    operator keeps unserved metrics of its own.
    """
    await kopf.operator(
        standalone=standalone,
        clusterwide=clusterwide,
        namespaces=list(namespaces),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
        memo=kopf.Memo(metrics=metrics or Metrics("operator")),
    )

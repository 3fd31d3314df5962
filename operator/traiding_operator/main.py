"""Running the operator: in-process (tests, embedding) or from `traiding operator`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection

import kopf

import traiding_operator.handlers  # noqa: F401 - registers the handlers with kopf's default registry
from traiding.telemetry.metrics import Metrics
from traiding_operator.config import OperatorSettings
from traiding_operator.handlers import IDENTITY_KEY, LEASE_KEY, SETTINGS_KEY
from traiding_operator.lease import LeaseSettings
from traiding_operator.shards import SHARD_KEY, Shard


async def run_operator(
    *,
    namespaces: Collection[str] = (),
    clusterwide: bool = False,
    peering: str | None = None,
    identity: str | None = None,
    lease_seconds: int | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    liveness_endpoint: str | None = None,
    metrics: Metrics | None = None,
    settings: OperatorSettings | None = None,
    shard: Shard | None = None,
) -> None:
    """Serve TradingRuns in `namespaces` (or all, with `clusterwide`) until `stop_flag` is set.

    Any number of operator processes may serve the same namespaces: each run's Lease lets one of them drive
    it, the others wait and take over (`identity` names this process in the Leases; `lease_seconds` is how long
    a silent holder keeps them). `peering` additionally runs kopf's peering under that name (it needs kopf's
    KopfPeering CRDs): only the highest-priority operator of the peering is active at all; without it the
    operator is standalone. `liveness_endpoint` (e.g. http://0.0.0.0:8080/healthz) serves kopf's health
    endpoint, which answers while the operator's watch streams and tasks run. `metrics` collects what the runs
    and the exchange layer report (serve its registry to expose them); without it the operator keeps unserved
    metrics of its own. `settings` (default: from the environment, see config.py) say which endpoints runs may
    use, where the cluster-wide kill switch and the encryption keys are, and more.
    """
    memo = kopf.Memo(metrics=metrics or Metrics("operator"))
    if settings is not None:
        memo[SETTINGS_KEY] = settings
    if identity:
        memo[IDENTITY_KEY] = identity
    if lease_seconds is not None:
        memo[LEASE_KEY] = LeaseSettings.for_duration(lease_seconds)
    memo[SHARD_KEY] = shard or Shard()
    await kopf.operator(
        standalone=peering is None,
        peering_name=peering,
        clusterwide=clusterwide,
        namespaces=list(namespaces),
        memo=memo,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
    )

"""The kill switches: a ConfigMap with a fixed name in a run's namespace, and one in the operator's namespace
that applies to every namespace it serves.

    kubectl -n trading create configmap traiding-kill-switch --from-literal=halt=true \\
        [--from-literal=flatten=true] [--from-literal=reason="exchange incident"]

A set switch (`halt: "true"`) halts every live run it covers (see `traiding.pipeline.halt`) and refuses live
runs that have not started trading; dry runs move no money and go on. Deleting the ConfigMap or setting
`halt: "false"` clears it, which resumes nothing. A ConfigMap rather than a resource of our own: the operator
may read exactly these objects (RBAC `resourceNames`), kubectl and every GitOps tool can set them, and the
chart's admission policy lets only a configured group change them.

The switches are read at most every `poll_seconds` per namespace, shared by every run's driver in the process.
A switch that cannot be read stops the driver's step (retried): no live run trades without knowing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from traiding.pipeline.halt import HaltOrder
from traiding_operator.kube import KubeCalls

KILL_SWITCH_NAME = "traiding-kill-switch"
HALT, FLATTEN, REASON = "halt", "flatten", "reason"
MAX_REASON = 200
_TRUE = {"true", "yes", "1"}


class KillSwitchUnreadable(Exception):
    """The kill switch could not be read: the run's step does not go on without it."""


def halt_order_of(data: Mapping[str, str] | None, source: str) -> HaltOrder | None:
    """The switch a ConfigMap's data sets, or None when it is clear."""
    data = data or {}
    if str(data.get(HALT, "")).strip().lower() not in _TRUE:
        return None
    reason = " ".join(str(data.get(REASON, "")).split())[:MAX_REASON]
    return HaltOrder(source=source, flatten=str(data.get(FLATTEN, "")).strip().lower() in _TRUE, reason=reason)


def combined(orders: list[HaltOrder]) -> HaltOrder | None:
    """Both switches set: the run is halted by both, and flattened if either says so."""
    if not orders:
        return None
    if len(orders) == 1:
        return orders[0]
    return HaltOrder(
        source=" and ".join(o.source for o in orders),
        flatten=any(o.flatten for o in orders),
        reason="; ".join(o.reason for o in orders if o.reason),
    )


@dataclass
class _Cached:
    order: HaltOrder | None
    read_at: float


class KillSwitches:
    """The kill switches as this operator sees them (see module doc)."""

    def __init__(
        self,
        kube: KubeCalls,
        cluster_namespace: str | None,
        poll_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.api = CoreV1Api(kube.api)
        self.cluster_namespace = cluster_namespace
        self.poll_seconds = poll_seconds
        self._monotonic = monotonic
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def engaged(self, namespace: str) -> HaltOrder | None:
        """The switch that covers runs in `namespace` (its own, or the cluster-wide one), or None."""
        orders = [await self._read(namespace, f"ConfigMap {namespace}/{KILL_SWITCH_NAME}")]
        if self.cluster_namespace and self.cluster_namespace != namespace:
            source = f"the cluster-wide ConfigMap {self.cluster_namespace}/{KILL_SWITCH_NAME}"
            orders.append(await self._read(self.cluster_namespace, source))
        return combined([o for o in orders if o is not None])

    async def _read(self, namespace: str, source: str) -> HaltOrder | None:
        lock = self._locks.setdefault(namespace, asyncio.Lock())
        async with lock:  # hundreds of runs in a namespace: one read per poll, not one each
            cached = self._cache.get(namespace)
            if cached is not None and self._monotonic() - cached.read_at < self.poll_seconds:
                return cached.order
            try:
                config_map = await self.kube.call(self.api.read_namespaced_config_map, KILL_SWITCH_NAME, namespace)
                order = halt_order_of(config_map.data, source)
            except ApiException as error:
                if error.status != 404:
                    raise KillSwitchUnreadable(
                        f"cannot read the kill switch {source} (HTTP {error.status}): live runs wait until it can be"
                    ) from None
                order = None
            self._cache[namespace] = _Cached(order, self._monotonic())
            return order

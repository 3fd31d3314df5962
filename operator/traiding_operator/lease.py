"""One driver per run: a Kubernetes Lease (coordination.k8s.io/v1) per TradingRun.

Every operator process runs a daemon per unfinished run, but only the holder of the run's Lease drives it.
The others wait and take over once the holder has not renewed it for the lease's duration (measured on the
candidate's own clock, as client-go's leader election does, so clocks need not agree), or at once when the
record is older than twice its duration by the wall clock (the operator was down). The holder renews it
every `renew_every_s` and stops acting on its own once it could not renew for `renew_deadline_s`, which is
shorter than the duration: it has stopped before anyone may start.

Timing alone is not the guard: every status write carries the resourceVersion its step read, so a driver
that lost its Lease without noticing fails its next write and sends nothing (see status_writer).

The Lease is named after the run, owned by it (the garbage collector deletes it with the run) and held by
`identity`: a restarted container with the same identity (the Pod's name) takes its runs back at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes.client import CoordinationV1Api, V1Lease, V1LeaseSpec, V1ObjectMeta, V1OwnerReference
from kubernetes.client.exceptions import ApiException

from traiding.resource import API_GROUP, API_VERSION, KIND
from traiding_operator.kube import KubeCalls

log = logging.getLogger(__name__)
MAX_NAME = 253


class LeaseLost(Exception):
    """This process no longer holds the run's Lease: it must stop acting on the run."""


@dataclass(frozen=True)
class LeaseSettings:
    duration_s: int = 15  # a holder that stops renewing is replaced after this long
    renew_every_s: float = 5.0
    renew_deadline_s: float = 10.0  # a holder that could not renew for this long stops acting

    @classmethod
    def for_duration(cls, duration_s: int) -> LeaseSettings:
        if duration_s < 3:
            raise ValueError("the lease duration must be at least 3 seconds")
        return cls(duration_s=duration_s, renew_every_s=duration_s / 3, renew_deadline_s=duration_s * 2 / 3)

    @property
    def retry_s(self) -> float:
        """How often a waiting candidate looks at the Lease again."""
        return self.renew_every_s


def lease_name(run_name: str) -> str:
    name = f"tradingrun-{run_name}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11]}-{digest}"


class RunLease:
    """The Lease of one run, as seen by one operator process (see module doc)."""

    def __init__(
        self,
        kube: KubeCalls,
        *,
        namespace: str,
        run_name: str,
        run_uid: str,
        identity: str,
        settings: LeaseSettings,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.api = CoordinationV1Api(kube.api)
        self.namespace = namespace
        self.name = lease_name(run_name)
        self.run_name = run_name
        self.run_uid = run_uid
        self.identity = identity
        self.settings = settings
        self._monotonic = monotonic
        self._wall = wall
        self._valid_until = 0.0
        self._observed: tuple[str, float] | None = None  # (resourceVersion, when first seen) of another holder
        self._last: V1Lease | None = None  # the Lease as this process last wrote it
        self._first_try = True
        self.holder: str | None = None  # who held it at the last look

    @property
    def held(self) -> bool:
        return self._monotonic() < self._valid_until

    def check(self) -> None:
        if not self.held:
            raise LeaseLost(f"{self.identity} no longer holds Lease {self.namespace}/{self.name}")

    async def try_acquire(self) -> bool:
        """Take the Lease if it is free, ours, or expired; False when another holder has it."""
        started = self._monotonic()
        if self._first_try:
            # A run seen for the first time most often has no Lease yet: create it without reading first
            # (a run picked up at once is one request sooner); one that exists answers 409 and is read.
            self._first_try = False
            if await self._create(started):
                return True
        try:
            lease = await self.kube.call_urgent(self.api.read_namespaced_lease, self.name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            return await self._create(started)
        spec = lease.spec or V1LeaseSpec()
        self.holder = spec.holder_identity
        if spec.holder_identity not in (None, "", self.identity) and not self._expired(lease):
            return False
        return await self._update(lease, started)

    async def renew(self) -> bool:
        """Renew a Lease this process holds; False (and no longer held) when it is someone else's now.

        As client-go's leader election does, the holder first updates the Lease as it last wrote it: one
        request, and refused (409) if anything changed it since, in which case it reads the Lease and looks.
        """
        started = self._monotonic()
        if self._last is not None and await self._update(self._last, started):
            return True
        lease = await self.kube.call_urgent(self.api.read_namespaced_lease, self.name, self.namespace)
        if (lease.spec.holder_identity if lease.spec else None) != self.identity:
            self._valid_until = 0.0
            return False
        return await self._update(lease, started)

    async def release(self) -> None:
        """Give the Lease up so another process may take over at once (best effort)."""
        if self._valid_until == 0.0:
            return
        self._valid_until = 0.0
        last, self._last = self._last, None
        with suppress(ApiException, OSError):
            if last is not None and await self._give_up(last):
                return
            lease = await self.kube.call_urgent(self.api.read_namespaced_lease, self.name, self.namespace)
            if lease.spec is not None and lease.spec.holder_identity == self.identity:
                await self._give_up(lease)

    async def _give_up(self, lease: V1Lease) -> bool:
        """Clear the holder of `lease` (as this process read or wrote it); False when it changed since (409)."""
        if lease.spec is None:
            return False
        lease.spec.holder_identity = None
        try:
            await self.kube.call_urgent(self.api.replace_namespaced_lease, self.name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    @asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Renew the Lease in the background while the block runs."""
        task = asyncio.create_task(self._keep(), name=f"lease {self.namespace}/{self.name}")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _keep(self) -> None:
        last = self._monotonic()
        while self.held:
            # Every renew_every_s from the start of the last renewal, however long that one took: a slow API
            # server must not stretch the interval past the deadline.
            await asyncio.sleep(max(0.0, self.settings.renew_every_s - (self._monotonic() - last)))
            last = self._monotonic()
            try:
                if not await self.renew():
                    log.warning("lease %s/%s was taken over by another operator", self.namespace, self.name)
                    return
            except (ApiException, OSError) as error:  # a missed renewal: the deadline decides
                log.warning("renewing lease %s/%s failed: %s", self.namespace, self.name, error)

    def _expired(self, lease: V1Lease) -> bool:
        """Whether another holder's record is old: unchanged for its duration on our clock, or (the operator
        was away) renewed longer than twice its duration ago by the wall clock."""
        now = self._monotonic()
        version = str(lease.metadata.resource_version if lease.metadata else "")
        if self._observed is None or self._observed[0] != version:
            self._observed = (version, now)
        spec = lease.spec or V1LeaseSpec()
        duration = float(spec.lease_duration_seconds or self.settings.duration_s)
        if now - self._observed[1] >= duration:
            return True
        renewed = spec.renew_time
        return renewed is not None and (self._wall() - renewed).total_seconds() > 2 * duration

    def _spec(self, previous: V1LeaseSpec | None) -> V1LeaseSpec:
        now = self._wall()
        changed = previous is None or previous.holder_identity != self.identity
        transitions = (previous.lease_transitions or 0) if previous is not None else 0
        return V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.settings.duration_s,
            acquire_time=now if changed or previous is None else previous.acquire_time,
            renew_time=now,
            lease_transitions=transitions + (1 if changed and previous is not None else 0),
        )

    async def _create(self, started: float) -> bool:
        owner = V1OwnerReference(
            api_version=f"{API_GROUP}/{API_VERSION}", kind=KIND, name=self.run_name, uid=self.run_uid
        )
        body = V1Lease(
            metadata=V1ObjectMeta(name=self.name, namespace=self.namespace, owner_references=[owner]),
            spec=self._spec(None),
        )
        try:
            created = await self.kube.call_urgent(self.api.create_namespaced_lease, self.namespace, body)
        except ApiException as error:
            if error.status == 409:
                return False  # another process created it first
            raise
        return self._won(started, created)

    async def _update(self, lease: V1Lease, started: float) -> bool:
        lease.spec = self._spec(lease.spec)
        try:  # guarded by the resourceVersion read (or last written): of two candidates, one wins
            written = await self.kube.call_urgent(self.api.replace_namespaced_lease, self.name, self.namespace, lease)
        except ApiException as error:
            if error.status == 409:
                self._last = None
                return False
            raise
        return self._won(started, written)

    def _won(self, started: float, lease: V1Lease) -> bool:
        self._last = lease
        # Valid from when the request started: the renewal may have been delayed on its way.
        self._valid_until = started + self.settings.renew_deadline_s
        self._observed = None
        self.holder = self.identity
        return True

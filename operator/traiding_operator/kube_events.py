"""Mirrors a run's pipeline events to Kubernetes Events (what `kubectl describe` shows) and to the log.

Phase changes, the session's start, fills and every warning or error become Events; the rest (progress,
checks) only goes to the log. Messages come from the phase code, which never includes secrets.

Events are bounded the way Kubernetes' own event recorder (client-go's EventCorrelator) bounds them:
- a repeat of an Event (same run, type, reason and message) is not a new Event: the existing one's `count`
  and `lastTimestamp` go up, written at most every `REPEAT_WRITE_S` per Event (a session that skips an entry
  on every candle makes one Event and a few updates, not one Event per candle);
- once a run has said `SIMILAR_LIMIT` different messages of one type and reason within `SIMILAR_WINDOW_S`,
  further ones are combined into one Event "(combined from similar events): <the latest message>";
- what is remembered is bounded (the `KEPT_EVENTS` most recent Events, as client-go's LRU cache).
The posting runs in the background on the operator's own API calls (`KubeCalls`): a step never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import CoreV1Api, CoreV1Event, V1EventSource, V1ObjectMeta, V1ObjectReference
from kubernetes.client.exceptions import ApiException

from traiding.pipeline.events import Event
from traiding_operator.kube import KubeCalls

POSTED_TYPES = frozenset({"PhaseChanged", "SessionStarted", "OrderFilled", "KillSwitch", "Approved"})
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
MAX_MESSAGE = 1000  # the API server refuses longer Event messages
REPEAT_WRITE_S = 10.0
SIMILAR_LIMIT = 10  # client-go's defaults
SIMILAR_WINDOW_S = 600.0
KEPT_EVENTS = 4096
POSTERS = 4  # Events written at once
COMBINED = "(combined from similar events): "
COMPONENT = "traiding-operator"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectRef:
    """The run an Event is about."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


@dataclass
class _Posted:
    """One Event as written (or about to be): its name once created, its count and when it was last written."""

    ref: ObjectRef
    type: str
    reason: str
    message: str  # a combined Event shows the latest of the similar messages
    name: str | None = None
    first: datetime = field(default_factory=lambda: datetime.now(UTC))
    last: datetime = field(default_factory=lambda: datetime.now(UTC))
    count: int = 0  # occurrences so far
    written_count: int = 0  # occurrences the API server knows of
    written_at: float = -float("inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


Key = tuple[str, str, str, str]  # (object uid, type, reason, message, or COMBINED for the combined Event)


class EventRecorder:
    """The operator's Events, aggregated and posted in the background (see module doc)."""

    def __init__(self, kube: KubeCalls, identity: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.api = CoreV1Api(kube.api)
        self.identity = identity
        self.clock = clock
        self._events: OrderedDict[Key, _Posted] = OrderedDict()
        self._similar: OrderedDict[tuple[str, str, str], deque[float]] = OrderedDict()  # when each new message came
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._post_forever(), name=f"events {i}") for i in range(POSTERS)]
        self._tasks.append(asyncio.create_task(self._write_repeats_forever(), name="events repeats"))

    async def close(self) -> None:
        """Write what is still queued or counted (best effort), then stop."""
        try:
            async with asyncio.timeout(10):
                await self._queue.join()
                for key in list(self._events):
                    await self._write(key, force=True)
        except (TimeoutError, ApiException, OSError) as error:
            log.warning("some Events were not written at shutdown: %s", error)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def record(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        """Count an Event for `ref`; it is written soon (never blocks)."""
        message = message[:MAX_MESSAGE]
        key: Key = (ref.uid, type_, reason, message)
        if key not in self._events and self._too_many_similar(ref, type_, reason, message):
            key = (ref.uid, type_, reason, COMBINED)
            message = (COMBINED + message)[:MAX_MESSAGE]
        now = datetime.now(UTC)
        posted = self._events.get(key)
        if posted is None:
            posted = self._events[key] = _Posted(ref, type_, reason, message, first=now, last=now)
            while len(self._events) > KEPT_EVENTS:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        posted.message = message
        posted.count += 1
        posted.last = now
        if posted.name is None or self.clock() - posted.written_at >= REPEAT_WRITE_S:
            self._queue.put_nowait(key)

    def forget(self, uid: str) -> None:
        """Drop what is remembered of a run that is gone (its Events go with it)."""
        for key in [k for k in self._events if k[0] == uid]:
            del self._events[key]
        for similar in [k for k in self._similar if k[0] == uid]:
            del self._similar[similar]

    def _too_many_similar(self, ref: ObjectRef, type_: str, reason: str, message: str) -> bool:
        """Whether the run said `SIMILAR_LIMIT` other messages of this type and reason within the window."""
        now = self.clock()
        group = (ref.uid, type_, reason)
        seen = self._similar.get(group)
        if seen is None:
            seen = self._similar[group] = deque()
            while len(self._similar) > KEPT_EVENTS:
                self._similar.popitem(last=False)
        while seen and now - seen[0] > SIMILAR_WINDOW_S:
            seen.popleft()
        if len(seen) >= SIMILAR_LIMIT:
            return True
        seen.append(now)
        return False

    async def _post_forever(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                await self._write(key, force=False)
            except (ApiException, OSError) as error:  # Events are best effort: a lost one is not retried
                log.warning("could not write an Event: %s", error)
            finally:
                self._queue.task_done()

    async def _write_repeats_forever(self) -> None:
        while True:
            await asyncio.sleep(REPEAT_WRITE_S)
            for key, posted in list(self._events.items()):
                if posted.name is not None and posted.count > posted.written_count:
                    self._queue.put_nowait(key)

    async def _write(self, key: Key, *, force: bool) -> None:
        posted = self._events.get(key)
        if posted is None:
            return
        async with posted.lock:
            if posted.count == posted.written_count:
                return
            if posted.name is not None and not force and self.clock() - posted.written_at < REPEAT_WRITE_S:
                return  # written a moment ago: the next round writes this repeat
            count, ref = posted.count, posted.ref
            if posted.name is None:
                posted.name = f"{ref.name}.{time.time_ns():x}"
                await self.kube.call(self.api.create_namespaced_event, ref.namespace, self._event(posted, count))
            else:
                patch: dict[str, Any] = {
                    "count": count,
                    "lastTimestamp": posted.last.isoformat(),
                    "message": posted.message,
                }
                await self.kube.call(
                    self.api.patch_namespaced_event,
                    posted.name,
                    ref.namespace,
                    patch,
                    _content_type="application/merge-patch+json",
                )
            posted.written_count, posted.written_at = count, self.clock()

    def _event(self, posted: _Posted, count: int) -> CoreV1Event:
        ref = posted.ref
        return CoreV1Event(
            metadata=V1ObjectMeta(name=posted.name, namespace=ref.namespace),
            involved_object=V1ObjectReference(
                api_version=ref.api_version, kind=ref.kind, name=ref.name, namespace=ref.namespace, uid=ref.uid
            ),
            type=posted.type,
            reason=posted.reason,
            message=posted.message,
            count=count,
            first_timestamp=posted.first,
            last_timestamp=posted.last,
            source=V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=self.identity[:128],
        )


class KubernetesEventSink:
    """A run's event log sink: every line to the log, the ones people act on to the recorder."""

    def __init__(
        self, recorder: EventRecorder, ref: ObjectRef, logger: logging.Logger | logging.LoggerAdapter[Any]
    ) -> None:
        self.recorder = recorder
        self.ref = ref
        self.logger = logger

    def emit(self, event: Event) -> None:
        level = LEVELS[event.level]
        # The object logger would post warnings as Events itself (kopf); this sink posts them, so log at INFO there.
        self.logger.log(
            min(level, logging.INFO),
            event.message,
            extra={"phase": event.phase, "event_type": event.type, "metrics": event.metrics},
        )
        if event.type in POSTED_TYPES or level >= logging.WARNING:
            message = event.message
            client_order_id = event.metrics.get("client_order_id")
            if client_order_id:
                message = f"{message} (client order id {client_order_id})"  # to find the order on the exchange
            self.recorder.record(self.ref, "Warning" if level >= logging.WARNING else "Normal", event.type, message)

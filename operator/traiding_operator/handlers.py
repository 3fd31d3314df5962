"""Kopf handlers for TradingRuns: thin glue; the work is in `traiding.pipeline` via `RunDriver`.

One daemon per unfinished TradingRun in every operator process; the run's Lease lets one of them drive it.
Kopf starts daemons for every matching object it lists, so after an operator restart each unfinished run
gets a new daemon, which continues from the run's status. Kopf also puts its finalizer on every unfinished
run, so deleting one (even while no operator runs) waits for the deletion handler: it closes the run's
positions before the object goes.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from traiding.domain.candles import CandleCache
from traiding.pipeline.history import HistoryStore
from traiding.pipeline.offload import INLINE, Offload, ProcessOffload
from traiding.resource import API_GROUP, API_VERSION, PLURAL
from traiding.settings import load_settings
from traiding.telemetry.metrics import Metrics
from traiding.telemetry.runs import facts_of
from traiding_adapters.hub import ExchangeHub
from traiding_operator.config import OperatorSettings
from traiding_operator.driver import OperatorRuntime, RunDriver, is_final
from traiding_operator.kill_switch import KillSwitches
from traiding_operator.kube import KubeCalls, api_client, client_configuration, connection_info
from traiding_operator.kube_events import EventRecorder
from traiding_operator.lease import LeaseSettings
from traiding_operator.shards import SHARD_KEY, SHARD_LABEL, Shard, in_shard
from traiding_operator.status_writer import RunGone, StatusWriter

# How long a stopping operator lets a run's step finish before cancelling it (kopf's cancellation_backoff),
# then how long a cancelled step gets to unwind. A cancelled step is simply redone by the next operator
# from the last written status; a graceful stop avoids even that.
STEP_GRACE_SECONDS = 60.0
CANCEL_UNWIND_SECONDS = 10.0
# Wait before restarting a daemon that raised (e.g. the API server was briefly unreachable).
DAEMON_RETRY_SECONDS = 5.0
ANNOTATION_PREFIX = "operator.traiding.io"
FINALIZER = f"{ANNOTATION_PREFIX}/finalizer"
# Kopf's own API calls (events, patches, watches) are bounded too.
KOPF_REQUEST_TIMEOUT_SECONDS = 30.0
KOPF_CONNECT_TIMEOUT_SECONDS = 10.0
WATCH_SERVER_TIMEOUT_SECONDS = 300
WATCH_CLIENT_TIMEOUT_SECONDS = 330.0
# Set by `run_operator` before kopf starts: who this process is, its Lease timing and its settings.
IDENTITY_KEY, LEASE_KEY, SETTINGS_KEY = "identity", "lease", "settings"

Logger = logging.Logger | logging.LoggerAdapter[Any]


class _QuietObserve(logging.Filter):
    """Drops kopf's line for each successful call of the `observe` handler: one per watch event of every run,
    which says nothing (its failures are still logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Handler 'observe' succeeded."


def configure_settings(settings: kopf.OperatorSettings, shard: Shard) -> None:
    # Kopf's own per-handler log lines as Events would bury the runs' phase changes, which the driver posts.
    settings.posting.level = logging.WARNING
    # Progress in annotations, not in status.kopf: the CRD's status schema has no `kopf` field (it would be
    # pruned), and the status belongs to the run.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    # Kopf puts it on unfinished runs (the daemon and the deletion handler need it) and takes it off at the end;
    # one per shard (Shard.finalizer).
    settings.persistence.finalizer = shard.finalizer(FINALIZER)
    # No dynamic scanning of namespaces and CRDs: the chart's RBAC grants neither list, and kopf would retry
    # each for about a minute (with an ERROR line per attempt) before serving anything. The namespaces to serve
    # are given (or all, cluster-wide), and the CRD is installed before the operator starts.
    settings.scanning.disabled = True
    settings.networking.request_timeout = KOPF_REQUEST_TIMEOUT_SECONDS
    settings.networking.connect_timeout = KOPF_CONNECT_TIMEOUT_SECONDS
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_SECONDS
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_SECONDS
    objects_logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, _QuietObserve) for f in objects_logger.filters):
        objects_logger.addFilter(_QuietObserve())


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    shard: Shard = memo.get(SHARD_KEY) or Shard()
    configure_settings(settings, shard)
    configuration = client_configuration()
    config: OperatorSettings = memo.get(SETTINGS_KEY) or load_settings(OperatorSettings)
    identity = str(memo.get(IDENTITY_KEY) or config.operator_identity)
    lease = memo.get(LEASE_KEY) or LeaseSettings()
    metrics: Metrics = memo["metrics"]
    hub = ExchangeHub(observer=metrics)
    metrics.watch_exchanges(hub)
    kube = KubeCalls(api_client(configuration))
    switches = KillSwitches(kube, config.operator_namespace, config.kill_switch_poll_seconds)
    # CPU-heavy phase work off the event loop, in worker processes sized to the machine (0 workers: inline).
    offload: Offload = INLINE if config.cpu_workers == 0 else ProcessOffload(config.cpu_workers)
    events = EventRecorder(kube, identity)
    events.start()
    memo["runtime"] = OperatorRuntime(
        kube,
        hub,
        HistoryStore(CandleCache(config.cache_dir), offload),
        events,
        config,
        identity,
        lease,
        shard.finalizer(FINALIZER),
        metrics,
        switches,
    )
    logger.info(
        "traiding operator started",
        extra={
            "server": configuration.host,
            "identity": identity,
            "lease_seconds": lease.duration_s,
            "simulators": sorted(config.simulators),
            "exchanges": config.exchanges,
            "operator_namespace": config.operator_namespace,
            "keys_secret": config.keys_secret,
            "cache": str(config.cache_dir),
            "cpu_workers": getattr(offload, "workers", 0),
            "shard": shard.describe(),
        },
    )


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(client_configuration(), trust_env=settings.networking.trust_env)


@kopf.on.cleanup()
async def stop(memo: Any, logger: Logger, **_: Any) -> None:
    runtime = memo.get("runtime")
    if isinstance(runtime, OperatorRuntime):
        # Adopted deletions stop with the operator (as its daemons do); the next operator resumes them.
        adoptions = list(runtime.adoptions.values())
        for task in adoptions:
            task.cancel()
        await asyncio.gather(*adoptions, return_exceptions=True)
        runtime.metrics.unwatch_exchanges(runtime.hub)
        await runtime.events.close()
        await runtime.history.flush()
        offload = runtime.history.offload
        if isinstance(offload, ProcessOffload):
            offload.close()
        await runtime.hub.close()
        runtime.kube.close()
    logger.info("traiding operator stopped")


@kopf.on.event(API_GROUP, API_VERSION, PLURAL, id="observe")
async def observe(
    event: kopf.RawEvent, body: kopf.Body, patch: kopf.Patch, memo: Any, logger: Logger, **_: Any
) -> None:
    """Every run of this operator's shard, finished ones too, in the metrics (runs by phase, open positions);
    and a new run of the shard picked up at once (its first status, `RunDriver.pick_up`).

    Unfiltered, so that a run relabelled into another shard leaves these metrics (the other shard's operator
    counts it then): summed over the shards' operators, each run is counted once. A coroutine: kopf runs a
    plain function on a thread, and the Event recorder it tells of a deleted run lives on the event loop.
    Kopf calls this before it starts the run's daemon, and sends the first status with its finalizer."""
    metrics: Metrics = memo["metrics"]
    runtime = memo.get("runtime")
    key = (str(body.metadata.namespace or ""), str(body.metadata.name))
    if event.get("type") == "DELETED" or not in_shard(body.metadata.labels.get(SHARD_LABEL), memo):
        metrics.runs.forget(key)
        if isinstance(runtime, OperatorRuntime) and event.get("type") == "DELETED":
            runtime.events.forget(str(body.metadata.uid))
            runtime.pickups.pop(str(body.metadata.uid), None)
        return
    metrics.runs.observe(key, facts_of(body))
    if not isinstance(runtime, OperatorRuntime):
        return
    uid = str(body.metadata.uid)
    action = finalizer_action(body, runtime.finalizer)
    if action is FinalizerAction.DROP:
        patch.fns.append(functools.partial(drop_foreign_finalizers, own=runtime.finalizer, memo=memo))
    elif action is FinalizerAction.ADOPT and uid not in runtime.adoptions:
        # A task, not awaited here: kopf goes on with this cycle and stops the run's daemon in this process,
        # which the deletion waits for.
        task = asyncio.create_task(adopt_deletion(key[0], key[1], runtime, logger))
        runtime.adoptions[uid] = task
        task.add_done_callback(lambda _: runtime.adoptions.pop(uid, None))
    if uid in runtime.pickups:  # picked up on an earlier event: kopf sends it (again, if refused)
        RunDriver(body, runtime, logger).picked_up()
    elif unpicked(body, memo):
        RunDriver(body, runtime, logger).pick_up(patch, functools.partial(unpicked, memo=memo))


class FinalizerAction(enum.Enum):
    DROP = "drop"  # take the foreign finalizers off: nothing needs them, or this operator's own guards the run
    ADOPT = "adopt"  # a deleted run no finalizer of this operator guards: step it as deleted here


def foreign_finalizers(body: Mapping[str, Any], own: str) -> list[str]:
    """The finalizers of other traiding operators on the run (an operator of every run, or of another shard):
    left by the operator that served the run before it was sharded, resharded or relabelled."""
    names = (body.get("metadata") or {}).get("finalizers") or []
    return [f for f in names if f != own and (f == FINALIZER or f.startswith(f"{FINALIZER}."))]


def finalizer_action(body: Mapping[str, Any], own: str) -> FinalizerAction | None:
    """What this operator does about foreign finalizers on a run of its shard. Kopf takes off only its own
    finalizer, so a foreign one would keep the run from ever being deleted; and kopf runs the deletion handler
    only for a run with its own finalizer, so a run deleted before this operator put it on would stay
    Terminating with its positions neither closed nor driven."""
    if not foreign_finalizers(body, own):
        return None
    metadata = body.get("metadata") or {}
    if is_final(body.get("status") or {}) or own in (metadata.get("finalizers") or []):
        return FinalizerAction.DROP
    if metadata.get("deletionTimestamp"):
        return FinalizerAction.ADOPT
    return None  # unfinished and not deleted: kopf puts this operator's own on in this cycle, then DROP


async def adopt_deletion(namespace: str, name: str, runtime: OperatorRuntime, logger: Logger) -> None:
    """The deletion handler's work for a run kopf does not give it (see finalizer_action), from a fresh read
    each attempt and retried as kopf retries the handler, until the run is final (its next event then drops the
    foreign finalizer), gone, or guarded by this operator's own finalizer (then kopf's handler does it)."""
    writer = StatusWriter(runtime.kube, namespace, name)
    while True:
        try:
            raw = await writer.read()
            if finalizer_action(raw, runtime.finalizer) is not FinalizerAction.ADOPT:
                return
            await RunDriver(kopf.Body(cast(kopf.RawBody, raw)), runtime, logger).delete()
            return
        except RunGone:
            return
        except kopf.TemporaryError as error:
            logger.info(f"deleting a run another operator's finalizer guards: {error}")
            delay = error.delay or DAEMON_RETRY_SECONDS
        except Exception as error:  # retried as a failing daemon is: the run must still be closed
            logger.warning(f"deleting a run another operator's finalizer guards: {error!r}")
            delay = DAEMON_RETRY_SECONDS
        await asyncio.sleep(delay)


def drop_foreign_finalizers(body: dict[str, Any], own: str, memo: Any) -> None:
    """A kopf patch function: the run without other traiding operators' finalizers (kopf sends the difference as
    a JSON patch). Kopf applies it again on a later cycle when the patch was refused for a newer change, without
    asking the handler again, so it decides again on the body it is given."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    if in_shard(labels.get(SHARD_LABEL), memo) and finalizer_action(body, own) is FinalizerAction.DROP:
        foreign = foreign_finalizers(body, own)
        metadata = body["metadata"]
        metadata["finalizers"] = [f for f in metadata.get("finalizers") or [] if f not in foreign]


def unpicked(body: Mapping[str, Any], memo: Any) -> bool:
    """A run of this shard no operator has picked up yet: no phase, and not being deleted."""
    metadata = body.get("metadata") or {}
    return (
        not (body.get("status") or {}).get("phase")
        and not metadata.get("deletionTimestamp")
        and in_shard((metadata.get("labels") or {}).get(SHARD_LABEL), memo)
    )


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return not is_final(status)


@kopf.daemon(
    API_GROUP,
    API_VERSION,
    PLURAL,
    id="drive",
    labels={SHARD_LABEL: in_shard},
    when=_unfinished,
    cancellation_backoff=STEP_GRACE_SECONDS,
    cancellation_timeout=CANCEL_UNWIND_SECONDS,
    backoff=DAEMON_RETRY_SECONDS,
)
async def drive(body: kopf.Body, memo: Any, stopped: kopf.DaemonStopped, logger: Logger, **_: Any) -> None:
    await RunDriver(body, memo["runtime"], logger).drive(stopped)


@kopf.on.delete(API_GROUP, API_VERSION, PLURAL, id="delete", labels={SHARD_LABEL: in_shard}, when=_unfinished)
async def delete(body: kopf.Body, memo: Any, logger: Logger, **_: Any) -> None:
    await RunDriver(body, memo["runtime"], logger).delete()

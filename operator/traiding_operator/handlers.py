"""Kopf handlers for TradingRuns: thin glue; the work is in `traiding.pipeline` via `RunDriver`.

One daemon per unfinished TradingRun. Kopf starts daemons for every matching object it lists, so after an
operator restart each unfinished run gets a new daemon, which continues from the run's status.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from traiding.resource import API_GROUP, API_VERSION, PLURAL
from traiding.telemetry.metrics import Metrics
from traiding.telemetry.runs import facts_of
from traiding_adapters.hub import ExchangeHub
from traiding_operator.config import OperatorConfig
from traiding_operator.driver import OperatorRuntime, RunDriver, is_final
from traiding_operator.kube import api_client, client_configuration, connection_info

# How long a stopping operator lets a run's step finish before cancelling it (kopf's cancellation_backoff),
# then how long a cancelled step gets to unwind. A cancelled step is simply redone by the next operator
# from the last written status; a graceful stop avoids even that.
STEP_GRACE_SECONDS = 60.0
CANCEL_UNWIND_SECONDS = 10.0
# Wait before restarting a daemon that raised (e.g. the API server was briefly unreachable).
DAEMON_RETRY_SECONDS = 5.0
ANNOTATION_PREFIX = "operator.traiding.io"

Logger = logging.Logger | logging.LoggerAdapter[Any]


def configure_settings(settings: kopf.OperatorSettings) -> None:
    # Kopf's own per-handler log lines as Events would bury the runs' phase changes, which the driver posts.
    settings.posting.level = logging.WARNING
    # Progress in annotations, not in status.kopf: the CRD's status schema has no `kopf` field (it would be
    # pruned), and the status belongs to the run.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"  # unused: no deletion handlers


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    configure_settings(settings)
    configuration = client_configuration()
    config = OperatorConfig.from_env()
    metrics: Metrics = memo["metrics"]
    hub = ExchangeHub(observer=metrics)
    metrics.watch_exchanges(hub)
    memo["runtime"] = OperatorRuntime(api_client(configuration), hub, config, metrics)
    logger.info(
        "traiding operator started",
        extra={"server": configuration.host, "simulator_url": config.simulator_url, "cache": str(config.cache_dir)},
    )


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    return connection_info(client_configuration(), trust_env=settings.networking.trust_env)


@kopf.on.cleanup()
async def stop(memo: Any, logger: Logger, **_: Any) -> None:
    runtime = memo.get("runtime")
    if isinstance(runtime, OperatorRuntime):
        runtime.metrics.unwatch_exchanges(runtime.hub)
        await runtime.hub.close()
        runtime.api.close()  # type: ignore[no-untyped-call]
    logger.info("traiding operator stopped")


@kopf.on.event(API_GROUP, API_VERSION, PLURAL, id="observe")
def observe(event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Every run this operator serves, finished ones too, in the metrics (runs by phase, open positions)."""
    metrics: Metrics = memo["metrics"]
    key = (str(body.metadata.namespace or ""), str(body.metadata.name))
    if event.get("type") == "DELETED":
        metrics.runs.forget(key)
    else:
        metrics.runs.observe(key, facts_of(body))


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return not is_final(status)


@kopf.daemon(
    API_GROUP,
    API_VERSION,
    PLURAL,
    id="drive",
    when=_unfinished,
    cancellation_backoff=STEP_GRACE_SECONDS,
    cancellation_timeout=CANCEL_UNWIND_SECONDS,
    backoff=DAEMON_RETRY_SECONDS,
)
async def drive(body: kopf.Body, memo: Any, stopped: kopf.DaemonStopped, logger: Logger, **_: Any) -> None:
    await RunDriver(body, memo["runtime"], stopped, logger).run()

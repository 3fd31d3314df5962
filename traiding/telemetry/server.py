"""Serving the metrics on /metrics: prometheus_client's HTTP server in a daemon thread."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from traiding.errors import UserError
from traiding.telemetry.metrics import Metrics

METRICS_PORT_ENV = "TRAIDING_METRICS_PORT"
METRICS_ADDRESS_ENV = "TRAIDING_METRICS_ADDRESS"


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(metrics: Metrics, port: int, address: str) -> MetricsServer | None:
    """Serve `metrics` on http://address:port/metrics; port 0 serves nothing (None)."""
    if port == 0:
        return None
    try:
        server, thread = start_http_server(port, addr=address, registry=metrics.registry)
    except OSError as error:
        raise UserError(f"cannot serve metrics on {address}:{port}: {error.strerror or error}") from None
    return MetricsServer(server, thread)


def port_from(value: str | int | None, env: Mapping[str, str] | None = None, default: int = 0) -> int:
    """A metrics port from a flag, else $TRAIDING_METRICS_PORT, else `default`; 0 disables."""
    env = os.environ if env is None else env
    raw = value if value is not None else env.get(METRICS_PORT_ENV)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise UserError(f"metrics port must be a number from 0 to 65535, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise UserError(f"metrics port must be a number from 0 to 65535, got {port}")
    return port

"""`traiding operator`: run the Kubernetes operator (JSON logs on stdout, metrics on /metrics)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from traiding.errors import UserError
from traiding.settings import load_settings
from traiding.telemetry.logs import configure_stream_logging
from traiding.telemetry.metrics import Metrics
from traiding.telemetry.server import METRICS_ADDRESS_ENV, METRICS_PORT_ENV, port_from, serve_metrics
from traiding_operator.config import IDENTITY_ENV, OperatorSettings
from traiding_operator.shards import SHARD_LABEL, Shard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="serve TradingRuns in this namespace (repeatable)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="serve TradingRuns in every namespace")
    coordination = parser.add_mutually_exclusive_group()
    coordination.add_argument(
        "--standalone",
        action="store_true",
        help="no kopf peering (the default): every replica is active, and each run's Lease picks its driver",
    )
    coordination.add_argument(
        "--peering",
        metavar="NAME",
        help="kopf peering under NAME (needs kopf's KopfPeering CRDs): only one replica is active at all",
    )
    parser.add_argument(
        "--identity",
        help=f"this process's name in the runs' Leases (default: ${IDENTITY_ENV}, else hostname plus a random suffix)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=int,
        default=15,
        help="how long a run's Lease outlives a silent holder before another operator takes the run over",
    )
    parser.add_argument(
        "--shard",
        metavar="NAME",
        help=f"serve only the runs labelled {SHARD_LABEL}=NAME (default: every run; see docs/operator.md#sharding)",
    )
    parser.add_argument(
        "--default-shard",
        action="store_true",
        help="with --shard: also serve the runs that carry no shard label (one shard of a cluster should)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve kopf's health endpoint here, e.g. http://0.0.0.0:8080/healthz (the chart's probes use it)",
    )
    parser.add_argument(
        "--metrics-port",
        help=f"serve Prometheus metrics on this port at /metrics; 0 disables (default: ${METRICS_PORT_ENV}, else 8000)",
    )
    parser.add_argument(
        "--metrics-address",
        help=f"address the metrics server binds (default: ${METRICS_ADDRESS_ENV}, else 0.0.0.0)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs")


def run(args: argparse.Namespace) -> int:
    if not args.namespace and not args.all_namespaces:
        raise UserError("say where to serve TradingRuns: --namespace NS (repeatable) or --all-namespaces")
    if args.lease_seconds < 3:
        raise UserError(f"--lease-seconds must be at least 3, got {args.lease_seconds}")
    if args.default_shard and not args.shard:
        raise UserError("--default-shard needs --shard NAME: it makes that shard serve the unlabelled runs too")
    try:
        shard = Shard(args.shard, default=args.default_shard)
    except ValueError as error:
        raise UserError(f"--shard: {error}") from None
    settings = load_settings(OperatorSettings)  # a bad setting stops here, naming it, before anything starts
    port = port_from(args.metrics_port, env={}, default=settings.metrics_port)
    address = args.metrics_address or settings.metrics_address
    configure_stream_logging(logging.DEBUG if args.verbose else logging.INFO)
    from traiding_operator.main import run_operator  # noqa: PLC0415 - kopf loads only when the operator runs

    metrics = Metrics("operator")
    server = serve_metrics(metrics, port, address)
    if server is not None:
        logging.getLogger(__name__).info(f"metrics on http://{address}:{server.port}/metrics")
    try:
        asyncio.run(
            run_operator(
                namespaces=args.namespace,
                clusterwide=args.all_namespaces,
                peering=args.peering,
                identity=args.identity,
                lease_seconds=args.lease_seconds,
                liveness_endpoint=args.liveness,
                metrics=metrics,
                settings=settings,
                shard=shard,
            )
        )
    finally:
        if server is not None:
            server.stop()
    return 0

"""`traiding operator`: run the Kubernetes operator (JSON logs on stderr)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from traiding.errors import UserError
from traiding_operator.logs import configure_json_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="serve TradingRuns in this namespace (repeatable)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="serve TradingRuns in every namespace")
    parser.add_argument(
        "--standalone",
        action="store_true",
        default=True,
        help="no peering with other operator replicas (the default; run a single replica)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve kopf's health endpoint here, e.g. http://0.0.0.0:8080/healthz (the chart's probes use it)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs")


def run(args: argparse.Namespace) -> int:
    if not args.namespace and not args.all_namespaces:
        raise UserError("say where to serve TradingRuns: --namespace NS (repeatable) or --all-namespaces")
    configure_json_logging(logging.DEBUG if args.verbose else logging.INFO)
    from traiding_operator.main import run_operator  # noqa: PLC0415 - kopf loads only when the operator runs

    asyncio.run(
        run_operator(
            namespaces=args.namespace,
            clusterwide=args.all_namespaces,
            standalone=args.standalone,
            liveness_endpoint=args.liveness,
        )
    )
    return 0

"""`traiding operator`: run the operator (JSON logs on stderr)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from traiding.errors import UserError
from traiding_operator.config import IDENTITY_ENV
from traiding_operator.logs import configure_json_logging


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
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs")


def run(args: argparse.Namespace) -> int:
    if not args.namespace and not args.all_namespaces:
        raise UserError("say where to serve TradingRuns: --namespace NS (repeatable) or --all-namespaces")
    if args.lease_seconds < 3:
        raise UserError(f"--lease-seconds must be at least 3, got {args.lease_seconds}")
    configure_json_logging(logging.DEBUG if args.verbose else logging.INFO)
    from traiding_operator.main import run_operator  # noqa: PLC0415 - kopf loads only when the operator runs

    asyncio.run(
        run_operator(
            namespaces=args.namespace,
            clusterwide=args.all_namespaces,
            peering=args.peering,
            identity=args.identity,
            lease_seconds=args.lease_seconds,
        )
    )
    return 0

"""`traiding doctor`: check an installation, each check with what to do when it fails.

Checks: the Python and library versions, the candle cache, the exchange layer against an in-process
exchange simulator (the real ccxt client over loopback, no network), and, when a kubeconfig is
configured, the cluster: reachable, the TradingRun CRD installed and equal to the one this version
generates. Exit 0 when every required check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from traiding.crd import build_crd
from traiding_adapters.hub import ExchangeHub
from traiding_simulator import SimulatorConfig, client_urls, run_simulator

LIBRARIES = ("kopf", "kubernetes", "ccxt", "pydantic", "numpy", "aiohttp", "tenacity", "prometheus-client")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not applicable here (skipped)
    detail: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ai-traiding" / "candles")
    parser.add_argument("--kubeconfig", help="kubeconfig to check (default: $KUBECONFIG, ~/.kube/config)")


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, f"{sys.version.split()[0]}" + ("" if ok else ": Python 3.11 or newer is required"))


def check_libraries() -> Check:
    found, missing = [], []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check("libraries", False, f"missing {', '.join(missing)}: reinstall with `pip install ai-traiding`")
    return Check("libraries", True, ", ".join(found))


def check_cache(folder: Path) -> Check:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        return Check("candle cache", False, f"{folder} is not writable ({error.strerror}): pass --cache DIR")
    return Check("candle cache", True, str(folder))


async def _exchange_round_trip() -> str:
    async with run_simulator(SimulatorConfig(log_requests=False)) as sim:
        hub = ExchangeHub()
        exchange = hub.get("binance", None, client_urls(sim.base_url))
        try:
            markets = await exchange.load_markets()
            ticker = await exchange.fetch_ticker("BTC/USDT")
            health = await exchange.health()
        finally:
            await exchange.close()
            await hub.close()
    return f"ccxt against the simulator: {len(markets)} markets, BTC/USDT {ticker.last}, {health.status}"


def check_exchange_layer() -> Check:
    try:
        return Check("exchange layer", True, asyncio.run(_exchange_round_trip()))
    except Exception as error:  # a doctor reports every failure instead of stopping at one
        return Check("exchange layer", False, f"{type(error).__name__}: {error}")


def _kubeconfig(args: argparse.Namespace) -> str | None:
    candidates = [args.kubeconfig, os.environ.get("KUBECONFIG"), str(Path.home() / ".kube" / "config")]
    return next((c.split(os.pathsep)[0] for c in candidates if c and Path(c.split(os.pathsep)[0]).is_file()), None)


def check_cluster(args: argparse.Namespace) -> list[Check]:
    path = _kubeconfig(args)
    if path is None:
        return [Check("cluster", None, "no kubeconfig; skipped (set KUBECONFIG to check a cluster)")]
    from kubernetes import client, config  # noqa: PLC0415 - only needed when a cluster is configured
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    try:
        api = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
        server = client.VersionApi(api).get_code()
    except Exception as error:
        return [Check("cluster", False, f"{path}: API server unreachable ({type(error).__name__}: {error})")]
    checks = [Check("cluster", True, f"{path}: Kubernetes {server.git_version}")]
    expected = build_crd()
    try:
        installed: Any = client.ApiextensionsV1Api(api).read_custom_resource_definition(expected["metadata"]["name"])
    except ApiException as error:
        if error.status != 404:
            raise
        checks.append(Check("TradingRun CRD", False, "not installed: `traiding crd | kubectl apply -f -`"))
        return checks
    served = api.sanitize_for_serialization(installed.spec)
    same = served.get("versions", [{}])[0].get("schema") == expected["spec"]["versions"][0]["schema"]
    detail = "installed and current" if same else "installed but differs from this version: re-apply `traiding crd`"
    checks.append(Check("TradingRun CRD", same, detail))
    return checks


def run(args: argparse.Namespace) -> int:
    steps: list[Callable[[], Check | list[Check]]] = [
        check_python,
        check_libraries,
        lambda: check_cache(args.cache),
        check_exchange_layer,
        lambda: check_cluster(args),
    ]
    results: list[Check] = []
    for step in steps:
        outcome = step()
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    for check in results:
        mark = {True: "ok", False: "FAIL", None: "skip"}[check.ok]
        print(f"{mark:>4}  {check.name:<16} {check.detail}")
    return 1 if any(check.ok is False for check in results) else 0

"""`traiding doctor`: check an installation, each check with what to do when it fails.

Checks: the Python and library versions, the candle cache, the exchange layer against an in-process
exchange simulator (the real ccxt client over loopback, no network), and, when a kubeconfig is configured,
the cluster (`traiding_operator.cluster_doctor`: the CRD at this version, the operator alive and its
metrics up, the SLOs' PrometheusRule, the Secrets of unfinished runs), then the exchanges that live runs
use (or `--exchange`, `--exchange-url`): reachable, clock skew within `--max-clock-skew-ms`. Human output
or `--json`; exit 0 when nothing failed, 1 otherwise (a skipped check is not a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from traiding.health_check import Check
from traiding_adapters.errors import clock_skew_message
from traiding_adapters.hub import ExchangeHub
from traiding_simulator import SimulatorConfig, client_urls, run_simulator

LIBRARIES = ("kopf", "kubernetes", "ccxt", "pydantic", "numpy", "aiohttp", "tenacity", "prometheus-client")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ai-traiding" / "candles")
    parser.add_argument("--kubeconfig", help="kubeconfig to check (default: $KUBECONFIG, ~/.kube/config)")
    parser.add_argument("--namespace", "-n", help="namespace of the runs to check (default: all namespaces)")
    parser.add_argument("--operator-namespace", help="namespace the chart is installed in (default: any)")
    parser.add_argument("--metrics-url", help="check this /metrics URL instead of the chart's metrics Service")
    parser.add_argument(
        "--exchange", action="append", default=[], metavar="ID", help="also check this ccxt exchange (repeatable)"
    )
    parser.add_argument(
        "--exchange-url", action="append", default=[], metavar="URL", help="check a Binance-compatible API at URL"
    )
    parser.add_argument("--max-clock-skew-ms", type=int, default=1000, help="tolerated clock skew (default 1000)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


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


def check_cluster(args: argparse.Namespace) -> tuple[list[Check], list[dict[str, Any]]]:
    path = _kubeconfig(args)
    if path is None:
        return [Check("cluster", None, "no kubeconfig; skipped (set KUBECONFIG to check a cluster)")], []
    from kubernetes import client, config  # noqa: PLC0415 - only needed when a cluster is configured

    from traiding_operator.cluster_doctor import cluster_checks  # noqa: PLC0415

    try:
        api = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
        server = client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as error:
        return [Check("cluster", False, f"{path}: API server unreachable ({type(error).__name__}: {error})")], []
    try:
        checks, runs = cluster_checks(api, args.namespace, args.operator_namespace, args.metrics_url)
    finally:
        api.close()
    return [Check("cluster", True, f"{path}: Kubernetes {server.git_version}"), *checks], runs


def live_exchanges(runs: list[dict[str, Any]]) -> set[str]:
    """The real exchanges unfinished live runs trade on (a simulator is checked by the run's ApiCheck)."""
    found = set()
    for run in runs:
        spec = run.get("spec") or {}
        exchange = spec.get("exchange") or {}
        if spec.get("mode") == "live" and not exchange.get("simulator"):
            found.add(str(exchange.get("id", "binance")))
    return found


async def _health(exchange_id: str, urls: dict[str, str] | None) -> Any:
    hub = ExchangeHub()
    exchange = hub.get(exchange_id, None, urls)
    try:
        return await exchange.health()
    finally:
        await exchange.close()
        await hub.close()


def check_exchange(label: str, exchange_id: str, urls: dict[str, str] | None, max_skew_ms: int) -> Check:
    """Reachable (server time and status, no retries) and the clock within `max_skew_ms` of the exchange's."""
    try:
        health = asyncio.run(_health(exchange_id, urls))
    except Exception as error:  # an unknown exchange id, a bad URL: reported like any other failure
        return Check(label, False, f"{type(error).__name__}: {error}")
    if not health.ok:
        return Check(label, False, f"{health.status}: {health.last_error or 'no answer'}")
    offset = health.clock_offset_ms
    if offset is not None and abs(offset) > max_skew_ms:
        return Check(label, False, clock_skew_message(offset, exchange_id, max_skew_ms))
    clock = "no server time" if offset is None else f"clock offset {offset:+d} ms (within {max_skew_ms})"
    return Check(label, True, f"reachable, {clock}, {health.latency_ms or 0:.0f} ms")


def exchange_checks(args: argparse.Namespace, runs: list[dict[str, Any]]) -> list[Check]:
    checks = [
        check_exchange(f"exchange {exchange_id}", exchange_id, None, args.max_clock_skew_ms)
        for exchange_id in sorted(live_exchanges(runs) | set(args.exchange))
    ]
    checks += [
        check_exchange(f"exchange {url}", "binance", client_urls(url), args.max_clock_skew_ms)
        for url in args.exchange_url
    ]
    return checks


def run(args: argparse.Namespace) -> int:
    results: list[Check] = [check_python(), check_libraries(), check_cache(args.cache), check_exchange_layer()]
    cluster, runs = check_cluster(args)
    results += cluster
    results += exchange_checks(args, runs)
    failed = any(check.ok is False for check in results)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [check.as_json() for check in results]}, indent=2))
    else:
        for check in results:
            print(check.as_line())
    return 1 if failed else 0

"""The operator at scale: N TradingRuns created at once against the local control plane, in rounds.

Starts the exchange simulator (`traiding simulator`, the bundled candles at --speed) and one operator
(`traiding operator --namespace NS`, or one per shard) as subprocesses, then, in this one process:

1. one run alone (twice; the faster counts), the reference for "all finished";
2. for each N of --sizes, --rounds rounds: create N short dry runs at once (16 threads of creates), and
   measure for each run the time from its create's answer to the first `status.phase` the API server
   reports (a watch of the runs in the Table format `kubectl get` uses, so following 500 runs costs the
   benchmark little), the time until every run of the round is final, how the runs ended, the API requests
   per run, and the operator's peak RSS (sampled every 0.2 s from /proc: the operator process, and with the
   workers of its process pool); then the runs are deleted before the next round.

API requests per run come from the API server's own `apiserver_request_total`, read before and after the
round: the round's increase, minus this benchmark's own requests (the creates, its watch), minus what the
control plane's background chatter (leader-election Leases, the fake node's heartbeat) adds at the rate
measured while idle, divided by N. Broken down by resource and verb.

Targets (the operator at scale, docs/benchmarks.md): with 200 runs the first transition's p95 under 1 s and
every run finished within 2x the time one run takes alone plus 30 s; with 500 runs p95 under 2 s and no
failure one run alone would not have; peak RSS under 300 MB at 200 runs, within 10% across its rounds.
Exits 1 when one is missed.

    export AI_TRAIDING_CLUSTER_DIR=...; export "$(scripts/cluster up | tail -1)"
    .venv/bin/python benchmarks/operator_scale.py [--sizes 50 200 500] [--rounds 3]

With --shards K (K > 1), K operators (`--shard s0` ... `--shard sK-1`) share the runs, labelled with their
shards in turn, as several operator Deployments of the chart would; the RSS reported is the largest operator's.

Linux only (RSS from /proc). The operator's own metrics port is off (--metrics-port 0).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from traiding_operator.shards import SHARD_LABEL

REPO = Path(__file__).resolve().parents[1]
TRAIDING = str(Path(sys.executable).parent / "traiding")
GROUP, VERSION, PLURAL = "traiding.io", "v1alpha1", "tradingruns"
FINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
CREATE_THREADS = 16
RSS_SAMPLE_S = 0.2
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
REQUEST_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')


# --------------------------------------------------------------------------------------------- the cluster


class Cluster:
    """The control plane of $KUBECONFIG: the runs' API, a raw HTTP pool for the Table watch and /metrics."""

    def __init__(self) -> None:
        self.configuration = client.Configuration()
        config.load_kube_config(client_configuration=self.configuration)  # type: ignore[no-untyped-call]
        self.api = client.ApiClient(self.configuration)
        self.objects = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.http: urllib3.PoolManager = self.api.rest_client.pool_manager
        headers: dict[str, str] = {}
        settings: Any = self.configuration.auth_settings()
        for auth in settings.values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"])] = str(auth["value"])
        self.headers = headers

    def url(self, path: str) -> str:
        return f"{self.configuration.host}{path}"

    def install_crd(self) -> None:
        ext = client.ApiextensionsV1Api(self.api)
        body = yaml.safe_load((REPO / "crds" / "tradingrun.yaml").read_text())
        name = body["metadata"]["name"]
        try:
            current: Any = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        except ApiException as error:
            if error.status != 404:
                raise
            ext.create_custom_resource_definition(body)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            crd: Any = ext.read_custom_resource_definition(name)
            conditions = crd.status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
            time.sleep(0.2)
        raise RuntimeError("the TradingRun CRD did not become Established")

    def requests(self) -> Counter[tuple[str, str]]:
        """apiserver_request_total summed by (resource[/subresource], verb)."""
        answer = self.http.request("GET", self.url("/metrics"), headers=self.headers)
        counts: Counter[tuple[str, str]] = Counter()
        for line in answer.data.decode().splitlines():
            match = REQUEST_LINE.match(line)
            if match is None:
                continue
            labels = dict(LABEL.findall(match["labels"]))
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            counts[(resource, labels.get("verb", ""))] += int(float(match["value"]))
        return counts

    def list_runs(self, namespace: str) -> dict[str, Any]:
        listing: Any = self.objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return dict(listing)

    def delete_runs(self, namespace: str, timeout: float = 300) -> None:
        self.objects.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        deadline = time.monotonic() + timeout
        while self.list_runs(namespace)["items"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"runs in {namespace} were not deleted within {timeout:.0f} s")
            time.sleep(0.5)


class RunWatch:
    """Watches the namespace's runs in the Table format: when each first had a phase and became final."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.first: dict[str, float] = {}
        self.final: dict[str, float] = {}
        self.outcome: dict[str, str] = {}
        self._stop = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._watch, name="run-watch", daemon=True)

    def start(self) -> RunWatch:
        self._version = self.cluster.list_runs(self.namespace)["metadata"]["resourceVersion"]
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._response is not None:
            with suppress(Exception):
                self._response.shutdown()
        self._thread.join(10)

    def _watch(self) -> None:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}"
        while not self._stop.is_set():
            query = f"watch=true&includeObject=Metadata&allowWatchBookmarks=true&resourceVersion={self._version}"
            self._response = self.cluster.http.request(
                "GET",
                self.cluster.url(f"{path}?{query}"),
                headers={**self.cluster.headers, "Accept": TABLE},
                preload_content=False,
                timeout=urllib3.Timeout(connect=5, read=None),
            )
            buffer = b""
            try:
                for chunk in self._response.stream(65536):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self._event(json.loads(line))
            except Exception:  # the stream ended or was shut down: watch again unless stopping
                if self._stop.is_set():
                    return

    def _event(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        table = event.get("object") or {}
        if event.get("type") == "BOOKMARK" or table.get("kind") != "Table":
            self._version = (table.get("metadata") or {}).get("resourceVersion", self._version)
            return
        columns = [c["name"] for c in table.get("columnDefinitions") or []] or ["Name", "Phase"]
        for row in table.get("rows") or []:
            metadata = (row.get("object") or {}).get("metadata") or {}
            self._version = metadata.get("resourceVersion", self._version)
            name = str(metadata.get("name"))
            phase = row["cells"][columns.index("Phase")] if "Phase" in columns else row["cells"][1]
            if phase and name not in self.first:
                self.first[name] = now
            if phase in FINAL and name not in self.final:
                self.final[name] = now
                self.outcome[name] = str(phase)


# --------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def simulator(speed: float, start: str, log: Path) -> Iterator[tuple[str, int]]:
    """The simulator's base URL and pid."""
    port = free_port()
    command = [TRAIDING, "simulator", "--port", str(port), "--speed", str(speed), "--start", start, "--quiet"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/api/v3/ping", process, "the simulator")
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(30)


SIMULATOR_NAME = "bench"  # the runs name their simulator; the operator's allowlist maps it to its URL


@contextmanager
def operator(
    namespace: str, work: Path, extra: list[str], simulator_url: str, name: str = "operator"
) -> Iterator[subprocess.Popen[bytes]]:
    """An operator, with the benchmark's simulator allowed under the name the runs use; its log in NAME.log."""
    port = free_port()
    env = dict(
        os.environ,
        TRAIDING_CACHE_DIR=str(work / "cache"),
        TRAIDING_METRICS_PORT="0",
        TRAIDING_SIMULATORS=json.dumps({SIMULATOR_NAME: simulator_url}),
    )
    liveness = f"http://127.0.0.1:{port}/healthz"
    command = [TRAIDING, "operator", "--namespace", namespace, "--liveness", liveness, *extra]
    with (work / f"{name}.log").open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(liveness, process, "the operator")
            yield process
        finally:
            process.terminate()
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)


def wait_http(url: str, process: subprocess.Popen[bytes], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer on {url} within {timeout:.0f} s")


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control_plane_pids() -> dict[str, int]:
    """kube-apiserver's and etcd's pids from scripts/cluster's state folder (none when it is elsewhere)."""
    folder = Path(os.environ.get("AI_TRAIDING_CLUSTER_DIR", Path.home() / ".cache" / "ai-traiding" / "cluster"))
    pids: dict[str, int] = {}
    for name in ("kube-apiserver", "etcd"):
        with suppress(OSError, ValueError):
            pids[name] = int((folder / "pids" / f"{name}.pid").read_text().split()[0])  # "PID PATH"
    return pids


class CpuMeter:
    """CPU seconds each process of the benchmark spent between `start` and `stop`."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        if "operator" in self.processes:
            now["workers"] = sum(cpu_seconds(child) for child in children(self.processes["operator"]))
        now["benchmark"] = cpu_seconds(os.getpid())
        return now

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> None:
        after = self._now()
        self.used = {name: after[name] - self._before.get(name, 0.0) for name in after}


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class RssSampler:
    """Peak RSS of an operator process and of one with its children (the process pool), while running: the
    largest of the operators' when there are several (shards)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0.0
        self.peak_with_workers = 0.0
        self.workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                own = rss_mb(pid)
                kids = children(pid)
                self.workers = max(self.workers, len(kids))
                self.peak = max(self.peak, own)
                self.peak_with_workers = max(self.peak_with_workers, own + sum(rss_mb(k) for k in kids))
            self._stop.wait(RSS_SAMPLE_S)


# --------------------------------------------------------------------------------------------- rounds


def run_manifest(name: str, session: str, lookback: str, shard: str | None = None) -> dict[str, Any]:
    """A short dry run with loose gates (the benchmark is about the operator, not a strategy), in `shard`."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TradingRun",
        "metadata": {"name": name, "labels": {SHARD_LABEL: shard} if shard else {}},
        "spec": {
            "mode": "dry-run",
            "exchange": {"id": "binance", "simulator": {"name": SIMULATOR_NAME, "speed": 3000}},
            "market": {"symbols": ["ETH/USDT"], "timeframe": "5m"},
            "strategy": {"name": "sma-crossover", "params": {"fast": 10, "slow": 30}},
            "capital": {"currency": "USDT", "initial": 10000},
            "risk": {"maxPositionFraction": 0.5, "stopLossPct": 5, "dailyLossLimitPct": 5, "maxDrawdownPct": 20},
            "gates": {
                "dataCheck": {"lookback": lookback, "maxGapRatio": 0.01},
                "backtest": {"minTrades": 0, "minSharpe": None, "maxDrawdownPct": None},
            },
            "session": {"duration": session},
        },
    }


@dataclass
class Round:
    label: str
    runs: int
    first: list[float] = field(default_factory=list)  # seconds from create to the first phase, per run
    all_finished_s: float = float("nan")  # from the first create to the last run final
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0
    requests_per_run: float = float("nan")
    by_resource: dict[str, float] = field(default_factory=dict)
    rss_mb: float = 0.0
    rss_with_workers_mb: float = 0.0
    workers: int = 0
    creates_s: float = 0.0  # how long creating the round's runs took
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds by process during the round

    def pct(self, q: float) -> float:
        if not self.first:
            return float("nan")
        ordered = sorted(self.first)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Bench:
    cluster: Cluster
    namespace: str
    simulator_url: str
    processes: dict[str, int]  # name -> pid: the operators, the simulator, the control plane
    operators: list[int]  # the operators' pids
    shards: list[str]  # the runs are spread over these shards in turn (none: one operator serves every run)
    session: str
    lookback: str
    timeout_s: float
    idle_rate: dict[tuple[str, str], float] = field(default_factory=dict)  # background requests per second
    counter: int = 0

    def measure_idle(self, seconds: float) -> None:
        before = self.cluster.requests()
        started = time.monotonic()
        time.sleep(seconds)
        after = self.cluster.requests()
        elapsed = time.monotonic() - started
        self.idle_rate = {key: (after[key] - before[key]) / elapsed for key in after if after[key] > before[key]}

    def round(self, label: str, n: int) -> Round:
        result = Round(label, n)
        names = [f"{label}-{i:03d}" for i in range(n)]
        shard_of = {name: self.shards[i % len(self.shards)] for i, name in enumerate(names)} if self.shards else {}
        watch = RunWatch(self.cluster, self.namespace).start()
        before = self.cluster.requests()
        created: dict[str, float] = {}

        def create(name: str) -> None:
            body = run_manifest(name, self.session, self.lookback, shard_of.get(name))
            self.cluster.objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
            created[name] = time.monotonic()

        cpu = CpuMeter(self.processes)
        with RssSampler(self.operators) as rss:
            cpu.start()
            started = time.monotonic()
            with ThreadPoolExecutor(CREATE_THREADS) as pool:
                list(pool.map(create, names))
            result.creates_s = time.monotonic() - started
            deadline = started + self.timeout_s
            while len(watch.final) < n and time.monotonic() < deadline:
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            cpu.stop()
        result.cpu_s = cpu.used
        watch.stop()
        after = self.cluster.requests()
        result.first = [watch.first[name] - created[name] for name in names if name in watch.first]
        if watch.final:
            result.all_finished_s = max(watch.final.values()) - started
        result.unfinished = n - len(watch.final)
        result.outcomes = Counter(watch.outcome.values())
        for item in self.cluster.list_runs(self.namespace)["items"]:
            status = item.get("status") or {}
            if status.get("phase") in ("Failed", "Cancelled"):
                result.reasons[f"{status.get('phase')}: {status.get('reason')}"] += 1
        own = Counter({("tradingruns", "POST"): n, ("tradingruns", "WATCH"): 1, ("tradingruns", "LIST"): 1})
        by_resource: dict[str, float] = {}
        for key in after:
            extra = after[key] - before[key] - own.get(key, 0) - self.idle_rate.get(key, 0.0) * elapsed
            if extra >= max(1.0, 0.05 * n):  # what the round added, not the control plane's own noise
                by_resource[f"{key[1]} {key[0]}"] = extra
        result.by_resource = {k: v / n for k, v in sorted(by_resource.items(), key=lambda item: -item[1])}
        result.requests_per_run = sum(by_resource.values()) / n
        result.rss_mb, result.rss_with_workers_mb, result.workers = rss.peak, rss.peak_with_workers, rss.workers
        self.cluster.delete_runs(self.namespace)
        return result


# --------------------------------------------------------------------------------------------- report


def show(result: Round) -> None:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items())) or "none"
    print(
        f"{result.label:>8} {result.runs:>4} runs  first transition p50 {result.pct(50):6.2f} s  p95 "
        f"{result.pct(95):6.2f} s  p99 {result.pct(99):6.2f} s  all finished {result.all_finished_s:6.1f} s  "
        f"requests/run {result.requests_per_run:6.1f}  RSS {result.rss_mb:5.0f} MB "
        f"(+{result.workers} workers: {result.rss_with_workers_mb:4.0f} MB)  [{outcomes}"
        f"{f', {result.unfinished} unfinished' if result.unfinished else ''}]",
        flush=True,
    )
    cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.cpu_s.items())
    print(f"           creates took {result.creates_s:.2f} s; CPU seconds: {cpu}", flush=True)
    if result.reasons:
        print(f"           failures: {dict(result.reasons)}", flush=True)


def check(label: str, ok: bool, detail: str) -> bool:
    print(f"  {'PASS' if ok else 'FAIL'}  {label}: {detail}")
    return ok


def targets(alone: Round, rounds: dict[int, list[Round]]) -> bool:
    print("\nTargets:")
    ok = True
    alone_s = alone.all_finished_s
    for n, p95_limit in ((200, 1.0), (500, 2.0)):
        for r in rounds.get(n, []):
            ok &= check(
                f"{r.label} first transition p95 < {p95_limit:g} s", r.pct(95) < p95_limit, f"{r.pct(95):.2f} s"
            )
    for r in rounds.get(200, []):
        limit = 2 * alone_s + 30
        ok &= check(
            f"{r.label} all finished within 2 x {alone_s:.1f} s + 30 s = {limit:.1f} s",
            r.all_finished_s <= limit and r.unfinished == 0,
            f"{r.all_finished_s:.1f} s",
        )
    alone_failures = set(alone.reasons)
    for r in rounds.get(500, []):
        new = {reason: count for reason, count in r.reasons.items() if reason not in alone_failures}
        ok &= check(
            f"{r.label} no failure one run alone does not have",
            not new and r.unfinished == 0,
            f"{new or 'none'}{f', {r.unfinished} unfinished' if r.unfinished else ''}",
        )
    two_hundred = rounds.get(200, [])
    if two_hundred:
        peak = max(r.rss_mb for r in two_hundred)
        ok &= check("peak RSS at 200 runs < 300 MB", peak < 300, f"{peak:.0f} MB (the operator process)")
        low = min(r.rss_mb for r in two_hundred)
        spread = peak / low - 1 if low else float("inf")
        ok &= check("RSS within 10% across the 200-run rounds", spread <= 0.10, f"{spread:.1%}")
    return ok


def operator_shards(shards: list[str]) -> list[tuple[str, list[str]]]:
    """The operators to start, each with its `traiding operator` shard arguments: one for every run without
    shards, else one per shard."""
    if not shards:
        return [("operator", [])]
    return [(f"operator-{shard}", ["--shard", shard]) for shard in shards]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed", type=float, default=3000, help="the simulator's replay speed")
    parser.add_argument("--start", default="2021-01-15T00:00:00Z", help="replay start in the bundled candles")
    parser.add_argument("--session", default="6h", help="each run's session (market time)")
    parser.add_argument("--lookback", default="30d", help="each run's data-check lookback")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a round may take")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra `traiding operator` argument")
    parser.add_argument(
        "--shards", type=int, default=1, help="operators, each serving one shard of the runs (docs/operator.md)"
    )
    args = parser.parse_args()
    shards = [f"s{i}" for i in range(args.shards)] if args.shards > 1 else []

    cluster = Cluster()
    cluster.install_crd()
    namespace = f"bench-scale-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    work = Path(tempfile.mkdtemp(prefix="operator-scale-"))
    print(f"namespace {namespace}, logs in {work}; {os.cpu_count()} CPUs", flush=True)
    try:
        with ExitStack() as stack:
            url, simulator_pid = stack.enter_context(simulator(args.speed, args.start, work / "simulator.log"))
            operators = {
                name: stack.enter_context(operator(namespace, work, [*args.operator_arg, *shard_args], url, name))
                for name, shard_args in operator_shards(shards)
            }
            pids = [process.pid for process in operators.values()]
            processes = {**{n: p.pid for n, p in operators.items()}, "simulator": simulator_pid, **control_plane_pids()}
            bench = Bench(cluster, namespace, url, processes, pids, shards, args.session, args.lookback, args.timeout)
            bench.measure_idle(10)
            alone = [bench.round(f"alone{i}", 1) for i in (1, 2)]
            for r in alone:
                show(r)
            reference = min(alone, key=lambda r: r.all_finished_s)
            rounds: dict[int, list[Round]] = {}
            for n in args.sizes:
                for i in range(1, args.rounds + 1):
                    result = bench.round(f"n{n}r{i}", n)
                    show(result)
                    rounds.setdefault(n, []).append(result)
            for n, results in rounds.items():
                worst = max(results, key=lambda r: r.requests_per_run)
                print(
                    f"API requests per run at {n} (round {worst.label}): "
                    + ", ".join(f"{k} {v:.1f}" for k, v in worst.by_resource.items())
                )
            summary = {n: statistics.median(r.pct(95) for r in results) for n, results in rounds.items()}
            print(f"median first-transition p95 by size: {summary}")
            return 0 if targets(reference, rounds) else 1
    finally:
        with suppress(ApiException):
            cluster.core.delete_namespace(namespace)


if __name__ == "__main__":
    sys.exit(main())

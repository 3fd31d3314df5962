"""A real Prometheus scrapes a real `traiding operator` process during a real dry run against the simulator
(local control plane): every metric and every SLI has data, and every query of the dashboard answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_plugin import KubeCluster
from tests.integration.example_runs import started
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from tests.integration.test_dashboard import TARGETS, grafana_substituted
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    create_run,
    describe,
    manifest,
    objects,
    phase_is,
    wait_for_run,
)
from tests.prometheus_server import PrometheusServer, free_port, http_get, wait_for_url
from traiding_simulator import DataSource, FaultConfig, SimulatorConfig, ThreadedSimulator

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.usefixtures("crd_installed")]

TRAIDING = Path(sys.executable).parent / "traiding"
JOB = "ai-traiding-operator"  # the job the shipped rules select (SloConfig.job)
SLOS = ("availability", "exchange-latency", "trade-execution", "error-rate")
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
# Every metric the operator exports (histograms by their bucket series, counters with _total).
METRICS = (
    "traiding_build_info",
    "traiding_exchange_request_duration_seconds_bucket",
    "traiding_exchange_errors_total",
    "traiding_order_latency_seconds_bucket",
    "traiding_phase_duration_seconds_bucket",
    "traiding_phase_transitions_total",
    "traiding_kill_switch_trips_total",
    "traiding_runs",
    "traiding_runs_stopped_with_open_positions",
    "traiding_run_roi_percent",
    "traiding_run_pnl",
    "traiding_circuit_breaker_state",
    "traiding_rate_budget_used_ratio",
    "traiding_rate_budget_waits_total",
)


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    metrics_url: str
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


@pytest.fixture
def operator_process(
    kube_cluster: KubeCluster, k8s_namespace: str, tmp_path: Path, faulty_simulator: ThreadedSimulator
) -> Iterator[OperatorProcess]:
    """`traiding operator` as documented, its metrics on a loopback port, JSON logs to a file; started after the
    test's simulator, which it then allows."""
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "TRAIDING_CACHE_DIR": str(tmp_path / "cache"),
        "TRAIDING_METRICS_PORT": str(port),
    }
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(TRAIDING), "operator", "--namespace", k8s_namespace, "--metrics-address", "127.0.0.1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    running = OperatorProcess(process, f"http://127.0.0.1:{port}/metrics", log)
    try:
        wait_for_url(running.metrics_url, 60, process)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def faulty_simulator(shared_data: Path) -> Iterator[ThreadedSimulator]:
    """The simulator answering 503 to a tenth of order-book requests: errors the exchange layer retries."""
    config = SimulatorConfig(
        data=[DataSource(path=shared_data / "ETH_USDT-5m.json")],
        speed=3000,
        log_requests=False,
        faults=FaultConfig(error_rate=0.1, error_status=503, paths=["/api/v3/depth"], seed=3),
    )
    sim = started(config)
    try:
        yield sim
    finally:
        sim.stop()


def test_prometheus_sees_every_metric_sli_and_dashboard_query_during_a_dry_run(
    operator_process: OperatorProcess,
    faulty_simulator: ThreadedSimulator,
    k8s_api: Any,
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    target = operator_process.metrics_url.removeprefix("http://").removesuffix("/metrics")
    prometheus = PrometheusServer(tmp_path / "prometheus", JOB, [target]).start()
    try:
        start = time.time()
        deadline = time.monotonic() + 30
        while not prometheus.targets_up():
            assert time.monotonic() < deadline, "Prometheus never scraped the operator"
            time.sleep(0.5)
        body = manifest("eth-nightly", **{"session.duration": "1d"})
        body["metadata"]["labels"] = {"traiding.io/nightly": "true"}
        create_run(k8s_api, k8s_namespace, body)
        done = wait_for_run(k8s_api, k8s_namespace, "eth-nightly", phase_is("Succeeded", "Failed", "Cancelled"), "end")
        assert done["status"]["phase"] == "Succeeded", describe(done)
        time.sleep(4)  # the last scrape and a rule evaluation after the run finished
        end = time.time()

        missing = [name for name in METRICS if not prometheus.series(name, start, end)]
        assert not missing, f"no series in Prometheus for {missing}"
        # The run is counted where it ended, as a nightly dry run, its phases and orders measured.
        assert prometheus.query(f'traiding_runs{{job="{JOB}",phase="Succeeded",mode="dry-run",trigger="nightly"}} == 1')
        succeeded = prometheus.query(
            'traiding_phase_transitions_total{to_phase="Succeeded",mode="dry-run",trigger="nightly"}'
        )
        assert [float(s["value"][1]) for s in succeeded] == [1.0]
        stages = {s["stage"] for s in prometheus.series("traiding_order_latency_seconds_count", start, end)}
        assert stages == {"ack", "fill"}
        outcomes = {
            s["outcome"] for s in prometheus.series("traiding_exchange_request_duration_seconds_count", start, end)
        }
        assert {"ok", "error"} <= outcomes  # the injected 503s, retried
        errors = {s["error_class"] for s in prometheus.series("traiding_exchange_errors_total", start, end)}
        assert "ExchangeUnavailable" in errors
        [roi] = prometheus.series("traiding_run_roi_percent", start, end)
        assert (roi["run"], roi["run_namespace"]) == ("eth-nightly", k8s_namespace)
        assert not prometheus.query("traiding_run_roi_percent"), "a finished run's ROI series must be gone"

        no_sli = [
            f"{record}{window}{{slo={slo}}}"
            for slo in SLOS
            for window in WINDOWS
            for record in ("slo:sli_error:ratio_rate", "slo:burn_rate:ratio_rate")
            if not prometheus.query_range(f'{record}{window}{{slo="{slo}"}}', start, end)
        ]
        no_sli += [
            slo
            for slo in SLOS
            if not prometheus.query_range(f'slo:error_budget:remaining_ratio{{slo="{slo}"}}', start, end)
        ]
        assert not no_sli, f"SLI recording rules without data: {no_sli}"

        empty = [
            f"{title}: {expr}"
            for title, expr in TARGETS
            if not prometheus.query_range(grafana_substituted(expr, job=JOB, instance=target), start, end)
        ]
        assert not empty, "dashboard queries without a result:\n" + "\n".join(empty)
    finally:
        prometheus.stop()

    # A deleted run leaves the counts.
    objects(k8s_api).delete_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, "eth-nightly")
    gone = 'traiding_runs{mode="dry-run",phase="Succeeded",trigger="nightly"} 0.0'
    deadline = time.monotonic() + 30
    while gone not in http_get(operator_process.metrics_url).decode():
        assert time.monotonic() < deadline, "the deleted run is still counted"
        time.sleep(0.3)

    # The operator's stdout: JSON lines, the run's own lines with its run, namespace, phase and exchange.
    lines = [line for line in operator_process.lines() if line.get("run") == "eth-nightly"]
    assert lines, "no log line names the run"
    assert all(line["namespace"] == k8s_namespace and line["exchange"] == "binance" for line in lines)
    assert {"DataCheck", "Trading", "Succeeded"} <= {line.get("phase") for line in lines}

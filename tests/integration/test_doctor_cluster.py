"""`traiding doctor` against a real control plane, healthy and broken: no CRD, an old CRD, the operator down,
a run's Secret missing or missing a key, no PrometheusRule, an exchange whose clock is off.

The cluster is this module's own (`scripts/cluster up` in a state folder of its own), since the states here
include a cluster without the TradingRun CRD. Its kwok node marks the operator Deployment's Pods ready, as a
kubelet would; the metrics of an operator are served here on loopback by the operator's own metrics server
(the chart's Service path is checked on real Pods by scripts/e2e).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.cluster_plugin import CLUSTER_SCRIPT, REPO, wait_for

sys.path.insert(0, str(REPO / "scripts"))
import monitoring_crds

from traiding import __version__
from traiding.crd import build_crd
from traiding.resource import API_GROUP, API_VERSION, PLURAL
from traiding.telemetry.metrics import Metrics
from traiding.telemetry.server import serve_metrics
from traiding_simulator import SimulatorConfig, start_simulator_thread

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NAMESPACE = "trading"
OPERATOR_LABELS = {
    "app.kubernetes.io/name": "ai-traiding",
    "app.kubernetes.io/part-of": "ai-traiding",
    "app.kubernetes.io/component": "operator",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("doctor-cluster")
    env = dict(os.environ, AI_TRAIDING_CLUSTER_DIR=str(state))
    up = subprocess.run(
        [sys.executable, str(CLUSTER_SCRIPT), "up"], env=env, capture_output=True, text=True, check=False, cwd=REPO
    )
    assert up.returncode == 0, up.stderr[-3000:]
    kubeconfig = Path(up.stdout.strip().splitlines()[-1].split("=", 1)[1])
    try:
        yield kubeconfig
    finally:
        subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "down"], env=env, capture_output=True, check=False)


@pytest.fixture(scope="module")
def api(cluster: Path) -> Iterator[client.ApiClient]:
    api_client: client.ApiClient = config.new_client_from_config(config_file=str(cluster))  # type: ignore[no-untyped-call]
    client.CoreV1Api(api_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    yield api_client
    api_client.close()  # type: ignore[no-untyped-call]


def doctor(cluster: Path, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    """`traiding doctor --json` as a user runs it; the checks by name."""
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "traiding"), "doctor", "--kubeconfig", str(cluster), "--json", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report = json.loads(done.stdout)
    assert report["ok"] is (done.returncode == 0), done.stdout
    return done.returncode, {c["name"]: c for c in report["checks"]}


def apply_crd(api: client.ApiClient, crd: dict[str, Any]) -> None:
    extensions: Any = client.ApiextensionsV1Api(api)
    name = crd["metadata"]["name"]
    try:
        current: Any = extensions.read_custom_resource_definition(name)
        crd = {**crd, "metadata": {**crd["metadata"], "resourceVersion": current.metadata.resource_version}}
        extensions.replace_custom_resource_definition(name, crd)
    except client.ApiException as error:
        assert error.status == 404
        extensions.create_custom_resource_definition(crd)

    def established() -> bool:
        got: Any = extensions.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

    wait_for("the CRD to be established", established, timeout=60)


def operator_deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ai-traiding", "namespace": NAMESPACE, "labels": OPERATOR_LABELS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": OPERATOR_LABELS},
            "template": {
                "metadata": {"labels": OPERATOR_LABELS},
                "spec": {"containers": [{"name": "operator", "image": f"ai-traiding:{__version__}"}]},
            },
        },
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def live_run(name: str, secret: str) -> dict[str, Any]:
    """The example's run, live on binance with its keys in `secret`."""
    manifest: dict[str, Any] = yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text())
    manifest["metadata"] = {"name": name, "namespace": NAMESPACE}
    manifest["spec"]["mode"] = "live"
    manifest["spec"]["exchange"] = {"id": "binance", "credentialsSecretRef": {"name": secret}}
    return manifest


def test_a_cluster_without_the_crd_fails_and_says_how_to_install_it(cluster: Path, api: client.ApiClient) -> None:
    code, checks = doctor(cluster)
    assert code == 1
    assert checks["cluster"]["status"] == "ok"
    assert checks["TradingRun CRD"]["status"] == "fail"
    assert "not installed" in checks["TradingRun CRD"]["detail"]
    assert "kubectl apply" in checks["TradingRun CRD"]["detail"]


def test_an_old_crd_fails_naming_both_versions(cluster: Path, api: client.ApiClient) -> None:
    old = build_crd()
    old["metadata"]["labels"] = {**old["metadata"].get("labels", {}), "app.kubernetes.io/version": "0.0.1"}
    old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["description"] = "an older spec"
    apply_crd(api, old)
    code, checks = doctor(cluster)
    assert code == 1
    detail = checks["TradingRun CRD"]["detail"]
    assert checks["TradingRun CRD"]["status"] == "fail"
    assert f"installed at 0.0.1 with another schema, this is {__version__}" in detail


def test_the_current_crd_without_an_operator_fails_the_operator_check(cluster: Path, api: client.ApiClient) -> None:
    apply_crd(api, build_crd())
    code, checks = doctor(cluster)
    assert checks["TradingRun CRD"] == {
        "name": "TradingRun CRD",
        "status": "ok",
        "detail": f"installed and current ({__version__})",
    }
    assert code == 1
    assert checks["operator"]["status"] == "fail"
    assert "none found" in checks["operator"]["detail"]
    assert checks["PrometheusRule"]["status"] == "skip"  # no Prometheus Operator in this cluster
    assert checks["run Secrets"]["status"] == "skip"


def test_a_ready_operator_with_metrics_passes_and_scaled_to_zero_fails(cluster: Path, api: client.ApiClient) -> None:
    apps: Any = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NAMESPACE, operator_deployment(1))
    wait_for(
        "the operator Deployment to be ready",
        lambda: (apps.read_namespaced_deployment("ai-traiding", NAMESPACE).status.ready_replicas or 0) >= 1,
        timeout=60,
    )
    server = serve_metrics(Metrics("operator"), free_port(), "127.0.0.1")
    assert server is not None
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        code, checks = doctor(cluster, "--metrics-url", url)
        assert code == 0, checks
        assert checks["operator"]["status"] == "ok"
        assert f"Deployment {NAMESPACE}/ai-traiding: 1/1 ready" in checks["operator"]["detail"]
        assert checks["metrics"] == {
            "name": "metrics",
            "status": "ok",
            "detail": f"{url} serves the operator's metrics (version {__version__})",
        }
    finally:
        server.stop()
    code, checks = doctor(cluster, "--metrics-url", url)
    assert code == 1
    assert checks["metrics"]["status"] == "fail"

    apps.patch_namespaced_deployment_scale("ai-traiding", NAMESPACE, {"spec": {"replicas": 0}})
    wait_for(
        "the operator Deployment to have no ready replica",
        lambda: not apps.read_namespaced_deployment("ai-traiding", NAMESPACE).status.ready_replicas,
        timeout=60,
    )
    code, checks = doctor(cluster)
    assert code == 1
    assert checks["operator"]["status"] == "fail"
    assert f"Deployment {NAMESPACE}/ai-traiding is scaled to 0: no run is driven" in checks["operator"]["detail"]
    # Replicas that never become ready (here: no node matches them).
    apps.delete_namespaced_deployment("ai-traiding", NAMESPACE)
    unschedulable = operator_deployment(1)
    unschedulable["spec"]["template"]["spec"]["nodeSelector"] = {"traiding.io/no-such-node": "true"}
    wait_for(
        "the old Deployment to be gone",
        lambda: not apps.list_namespaced_deployment(NAMESPACE).items,
        timeout=60,
    )
    apps.create_namespaced_deployment(NAMESPACE, unschedulable)
    code, checks = doctor(cluster)
    assert code == 1
    assert f"Deployment {NAMESPACE}/ai-traiding: 0 of 1 replicas ready" in checks["operator"]["detail"]


def test_the_slo_rules_are_checked_once_the_prometheus_operator_is_installed(
    cluster: Path, api: client.ApiClient
) -> None:
    for crd in monitoring_crds.paths():
        apply_crd(api, yaml.safe_load(crd.read_text()))
    _, checks = doctor(cluster)
    assert checks["PrometheusRule"]["status"] == "fail"
    assert "the SLO alerts are not loaded" in checks["PrometheusRule"]["detail"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "ai-traiding-slo", "labels": {"app.kubernetes.io/part-of": "ai-traiding"}},
        "spec": yaml.safe_load(
            subprocess.run(
                [str(REPO / ".venv" / "bin" / "traiding"), "slo", "render"], capture_output=True, text=True, check=True
            ).stdout
        )["spec"],
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "monitoring.coreos.com", "v1", NAMESPACE, "prometheusrules", rule
    )
    _, checks = doctor(cluster)
    assert checks["PrometheusRule"] == {
        "name": "PrometheusRule",
        "status": "ok",
        "detail": f"{NAMESPACE}/ai-traiding-slo",
    }


def test_a_runs_secret_missing_or_missing_a_key_fails_naming_it_and_never_shows_a_value(
    cluster: Path, api: client.ApiClient
) -> None:
    objects = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    objects.create_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL, live_run("btc-live", "keys"))
    code, checks = doctor(cluster)
    assert code == 1
    assert checks[f"Secret of {NAMESPACE}/btc-live"] == {
        "name": f"Secret of {NAMESPACE}/btc-live",
        "status": "fail",
        "detail": f"Secret keys in namespace {NAMESPACE}: not found",
    }

    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="keys"), string_data={"apiKey": "doctor-key-value-123"})
    core.create_namespaced_secret(NAMESPACE, secret)
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "traiding"), "doctor", "--kubeconfig", str(cluster)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"Secret keys in namespace {NAMESPACE} has no key 'secret'" in done.stdout
    core.patch_namespaced_secret("keys", NAMESPACE, {"stringData": {"secret": "doctor-secret-value-456"}})
    code, checks = doctor(cluster)
    assert checks[f"Secret of {NAMESPACE}/btc-live"]["status"] == "ok"
    assert "doctor-key-value-123" not in done.stdout + json.dumps(checks)
    assert "doctor-secret-value-456" not in json.dumps(checks)


def test_a_set_kill_switch_fails_the_doctor_until_it_is_cleared(cluster: Path, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    _, checks = doctor(cluster)
    assert checks["kill switch"] == {"name": "kill switch", "status": "ok", "detail": f"clear in {NAMESPACE}"}
    switch = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="traiding-kill-switch"),
        data={"halt": "true", "flatten": "true", "reason": "exchange incident"},
    )
    core.create_namespaced_config_map(NAMESPACE, switch)
    code, checks = doctor(cluster)
    assert code == 1
    assert checks["kill switch"]["status"] == "fail"
    assert (
        f"{NAMESPACE}/traiding-kill-switch halts and flattens live runs (exchange incident)"
        in (checks["kill switch"]["detail"])
    )
    core.delete_namespaced_config_map("traiding-kill-switch", NAMESPACE)
    _, checks = doctor(cluster)
    assert checks["kill switch"]["status"] == "ok"


def test_the_exchange_of_a_live_run_is_checked_and_a_skewed_clock_fails(cluster: Path, api: client.ApiClient) -> None:
    # The live run above trades on binance, which this machine cannot reach: the doctor says so.
    code, checks = doctor(cluster)
    assert code == 1
    assert checks["exchange binance"]["status"] == "fail"
    with start_simulator_thread(SimulatorConfig(time_offset_ms=0, log_requests=False)) as on_time:
        _, checks = doctor(cluster, "--exchange-url", on_time.base_url)
        assert checks[f"exchange {on_time.base_url}"]["status"] == "ok"
        assert "clock offset" in checks[f"exchange {on_time.base_url}"]["detail"]
    with start_simulator_thread(SimulatorConfig(time_offset_ms=5000, log_requests=False)) as skewed:
        _, checks = doctor(cluster, "--exchange-url", skewed.base_url, "--max-clock-skew-ms", "1000")
        skew = checks[f"exchange {skewed.base_url}"]
        assert skew["status"] == "fail"
        assert "1000" in skew["detail"]

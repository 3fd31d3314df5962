"""The operator against a real control plane: the real kopf operator in a thread, runs against the simulator."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from pydantic import SecretStr

from tests.cluster_plugin import KubeCluster
from tests.integration.example_runs import allow_simulator, example_run, started
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from traiding_simulator import ApiKeyConfig, DataSource, SimulatorConfig, ThreadedSimulator

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("crd_installed")]

GROUP, VERSION, PLURAL = "traiding.io", "v1alpha1", "tradingruns"
KEY, SECRET = "operator-key-1", "operator-secret-value-9f3b"
RUN_TIMEOUT = 240.0
FINAL = (
    "Succeeded",
    "Failed",
    "Cancelled",
)  # a 6h session at 3000x trades for ~7 s; the rest is data, backtest and API checks


class OperatorThread:
    """The real operator (`traiding_operator.main.run_operator`) on its own event loop in a thread."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name=f"operator-{namespace}", daemon=True)

    def _main(self) -> None:
        from traiding_operator.main import run_operator  # noqa: PLC0415 - imports kopf and registers handlers

        try:
            asyncio.run(
                run_operator(
                    namespaces=[self.namespace],
                    stop_flag=self.stop_flag,
                    ready_flag=self.ready_flag,
                )
            )
        except BaseException as error:  # reported by stop()/the test, not lost in the thread
            self.error = error

    def start(self) -> OperatorThread:
        self.thread.start()
        if not self.ready_flag.wait(60):
            pytest.fail(f"the operator did not become ready within 60 s (error: {self.error!r})")
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "the operator did not stop within 120 s"
        assert self.error is None, f"the operator failed: {self.error!r}"


@pytest.fixture
def operator_env(kube_cluster: KubeCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube_cluster.kubeconfig))
    monkeypatch.setenv("TRAIDING_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def operator(operator_env: None, k8s_namespace: str, simulator: ThreadedSimulator) -> Iterator[OperatorThread]:
    """The operator, started after the test's simulator (so it allows it)."""
    running = OperatorThread(k8s_namespace).start()
    try:
        yield running
    finally:
        if running.thread.is_alive():
            running.stop()


def start_simulator(shared_data: Path) -> ThreadedSimulator:
    """The test's simulator, which knows the test's API key (KEY, SECRET) and is allowed as `test`."""
    config = SimulatorConfig(
        data=[DataSource(path=shared_data / "ETH_USDT-5m.json")],
        speed=3000,
        log_requests=False,
        keys=[ApiKeyConfig(key=KEY, secret=SecretStr(SECRET))],
        initial_balances={"USDT": Decimal(20_000), "BNB": Decimal(0)},
    )
    return started(config)


@pytest.fixture
def simulator(shared_data: Path) -> Iterator[ThreadedSimulator]:
    sim = start_simulator(shared_data)
    try:
        yield sim
    finally:
        sim.stop()


def manifest(name: str, **overrides: Any) -> dict[str, Any]:
    """examples/dry-run.yaml against the test's simulator at 3000x with a 6h session, plus dotted-path overrides."""
    document = example_run(**overrides)
    document["metadata"] = {"name": name}
    return document


def objects(k8s_api: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(k8s_api)


def create_run(k8s_api: Any, namespace: str, body: dict[str, Any]) -> None:
    objects(k8s_api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def get_run(k8s_api: Any, namespace: str, name: str) -> dict[str, Any]:
    return cast(dict[str, Any], objects(k8s_api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def annotate(k8s_api: Any, namespace: str, name: str, annotations: dict[str, str]) -> None:
    patch = {"metadata": {"annotations": annotations}}
    objects(k8s_api).patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch)


def describe(obj: dict[str, Any] | None) -> str:
    status = (obj or {}).get("status", {})
    return f"phase={status.get('phase')} reason={status.get('reason')} message={status.get('message')!r}"


def wait_for_run(
    k8s_api: Any,
    namespace: str,
    name: str,
    condition: Callable[[dict[str, Any]], bool],
    what: str,
    *,
    timeout: float = RUN_TIMEOUT,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    obj: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        obj = get_run(k8s_api, namespace, name)
        if condition(obj):
            return obj
        time.sleep(0.25)
    pytest.fail(f"{name}: no {what} within {timeout:.0f} s; last seen {describe(obj)}", pytrace=False)


def phase_is(*phases: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: obj.get("status", {}).get("phase") in phases


def run_events(k8s_api: Any, namespace: str, name: str) -> list[client.CoreV1Event]:
    listing = client.CoreV1Api(k8s_api).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return list(listing.items)


def wait_for_events(
    k8s_api: Any, namespace: str, name: str, reason: str, count: int, *, timeout: float = 30.0
) -> list[client.CoreV1Event]:
    """Kopf posts Events in the background: poll until `count` Events with `reason` exist."""
    deadline = time.monotonic() + timeout
    found: list[client.CoreV1Event] = []
    while time.monotonic() < deadline:
        found = [e for e in run_events(k8s_api, namespace, name) if e.reason == reason]
        if len(found) >= count:
            return found
        time.sleep(0.25)
    pytest.fail(f"{name}: {len(found)} {reason} Events after {timeout:.0f} s, expected {count}", pytrace=False)


def message_of(event: client.CoreV1Event) -> str:
    return event.message or ""


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj["status"]["conditions"]}


def phase_order(obj: dict[str, Any]) -> list[str]:
    """Phases in the order they started (the API server returns maps with sorted keys)."""
    phases = obj["status"]["phases"]
    return sorted(phases, key=lambda name: datetime.fromisoformat(phases[name]["startedAt"]))


def test_a_dry_run_goes_through_every_phase_to_succeeded(
    operator: OperatorThread, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str, kube_cluster: KubeCluster
) -> None:
    create_run(k8s_api, k8s_namespace, manifest("eth-dry"))
    done = wait_for_run(k8s_api, k8s_namespace, "eth-dry", phase_is("Succeeded", "Failed", "Cancelled"), "final phase")

    status = done["status"]
    assert status["phase"] == "Succeeded", describe(done)
    assert phase_order(done) == ["DataCheck", "Backtest", "ApiCheck", "Trading", "Reporting"]
    assert {name: rec["state"] for name, rec in status["phases"].items()} == dict.fromkeys(status["phases"], "Passed")
    ready = conditions(done)["Ready"]
    assert (ready["status"], ready["observedGeneration"]) == ("True", done["metadata"]["generation"])
    assert {
        c: conditions(done)[c]["status"] for c in ("DataChecked", "Backtested", "ApiChecked", "Traded")
    } == dict.fromkeys(("DataChecked", "Backtested", "ApiChecked", "Traded"), "True")
    assert status["observedGeneration"] == done["metadata"]["generation"]
    summary = status["summary"]
    assert summary["roiPct"] == pytest.approx(summary["pnl"] / 100)  # on the 10000 USDT of the example

    table = subprocess.run(
        [kube_cluster.tool("kubectl"), "get", "tradingruns", "eth-dry", "-n", k8s_namespace],
        env=kube_cluster.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header, row = table.splitlines()[:2]
    assert row.split()[header.split().index("PHASE")] == "Succeeded"

    changes = wait_for_events(k8s_api, k8s_namespace, "eth-dry", "PhaseChanged", 6)
    assert {message_of(e).split(":")[0] for e in changes} == {
        "Pending -> DataCheck",
        "DataCheck -> Backtest",
        "Backtest -> ApiCheck",
        "ApiCheck -> Trading",
        "Trading -> Reporting",
        "Reporting -> Succeeded",
    }
    assert all(e.type == "Normal" for e in changes)


def test_a_new_run_says_it_was_picked_up_before_its_lease_is_free(
    operator: OperatorThread, k8s_api: Any, k8s_namespace: str
) -> None:
    """The first status goes out with kopf's first patch of a new run, not after the run's Lease: a run whose
    Lease another operator holds still says DataCheck at once; nothing more is done until the Lease is free."""
    from traiding_operator.handlers import FINALIZER  # noqa: PLC0415 - imports kopf and registers handlers
    from traiding_operator.lease import lease_name  # noqa: PLC0415 - beside the handlers it is tested with

    leases = client.CoordinationV1Api(k8s_api)
    now = datetime.now(UTC)
    spec = client.V1LeaseSpec(
        holder_identity="op-elsewhere", lease_duration_seconds=3600, acquire_time=now, renew_time=now
    )
    leases.create_namespaced_lease(
        k8s_namespace, client.V1Lease(metadata=client.V1ObjectMeta(name=lease_name("held")), spec=spec)
    )
    create_run(k8s_api, k8s_namespace, manifest("held"))
    picked = wait_for_run(k8s_api, k8s_namespace, "held", phase_is("DataCheck"), "first status", timeout=15)
    time.sleep(3)  # the driver keeps waiting for the Lease meanwhile
    waiting = get_run(k8s_api, k8s_namespace, "held")
    assert waiting["status"] == picked["status"], "nothing but the first status is written without the Lease"
    assert picked["status"]["phases"]["DataCheck"]["state"] == "Running", describe(picked)
    assert FINALIZER in waiting["metadata"]["finalizers"]
    lease = leases.read_namespaced_lease(lease_name("held"), k8s_namespace)
    assert lease.spec is not None and lease.spec.holder_identity == "op-elsewhere"

    leases.delete_namespaced_lease(lease_name("held"), k8s_namespace)  # the other operator let go
    done = wait_for_run(k8s_api, k8s_namespace, "held", phase_is("Succeeded", "Failed", "Cancelled"), "final phase")
    assert done["status"]["phase"] == "Succeeded", describe(done)
    assert done["status"]["phases"]["DataCheck"]["startedAt"] == picked["status"]["phases"]["DataCheck"]["startedAt"]
    changes = wait_for_events(k8s_api, k8s_namespace, "held", "PhaseChanged", 6)
    assert sorted(message_of(e).split(":")[0] for e in changes).count("Pending -> DataCheck") == 1


def test_a_failed_gate_stops_the_run_with_the_reason(
    operator_env: None, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    # This run names no simulator: it uses the one the operator allows as `default`.
    allow_simulator(simulator.base_url, "default")
    running = OperatorThread(k8s_namespace).start()
    body = manifest("eth-gate", **{"gates.backtest.minSharpe": 50})
    del body["spec"]["exchange"]["simulator"]["name"]
    try:
        create_run(k8s_api, k8s_namespace, body)
        done = wait_for_run(
            k8s_api, k8s_namespace, "eth-gate", phase_is("Succeeded", "Failed", "Cancelled"), "final phase"
        )

        status = done["status"]
        assert (status["phase"], status["reason"]) == ("Failed", "BacktestGateFailed"), describe(done)
        assert "below the minimum 50" in status["message"]
        assert set(status["phases"]) == {"DataCheck", "Backtest"}  # nothing after the failed gate ran
        assert status["phases"]["Backtest"]["state"] == "Failed"
        assert conditions(done)["Ready"]["status"] == "False"
        assert conditions(done)["Backtested"]["status"] == "False"
        failed = [
            e
            for e in wait_for_events(k8s_api, k8s_namespace, "eth-gate", "PhaseChanged", 3)
            if "-> Failed" in message_of(e)
        ]
        assert [e.type for e in failed] == ["Warning"]
    finally:
        running.stop()


def test_a_run_continues_after_an_operator_restart_without_restarting_its_session(
    operator_env: None, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    first = OperatorThread(k8s_namespace).start()
    try:
        create_run(k8s_api, k8s_namespace, manifest("eth-restart", **{"session.duration": "1d"}))

        def trading_with_orders(obj: dict[str, Any]) -> bool:
            session = obj.get("status", {}).get("checkpoint", {}).get("session", {})
            return phase_is("Trading")(obj) and len(session.get("orders", {})) >= 1

        trading = wait_for_run(k8s_api, k8s_namespace, "eth-restart", trading_with_orders, "order in the session")
    finally:
        first.stop()
    started_ms = trading["status"]["checkpoint"]["session"]["started_ms"]
    stopped = get_run(k8s_api, k8s_namespace, "eth-restart")
    assert stopped["status"]["phase"] == "Trading", "the run must still be trading when its operator is gone"

    second = OperatorThread(k8s_namespace).start()
    try:
        done = wait_for_run(
            k8s_api, k8s_namespace, "eth-restart", phase_is("Succeeded", "Failed", "Cancelled"), "final phase"
        )
    finally:
        second.stop()
    assert done["status"]["phase"] == "Succeeded", describe(done)
    session = done["status"]["checkpoint"]["session"]
    assert session["started_ms"] == started_ms  # the session was continued, not started again
    booked = set(session["orders"])
    assert booked > set(trading["status"]["checkpoint"]["session"]["orders"])  # it went on trading
    paper_filled = {order["client_order_id"] for order in session["paper"]["orders"] if order["filled"] > 0}
    assert paper_filled == booked  # the paper account and the books agree, order for order
    assert len(wait_for_events(k8s_api, k8s_namespace, "eth-restart", "SessionStarted", 1)) == 1
    filled = [message_of(e) for e in run_events(k8s_api, k8s_namespace, "eth-restart") if e.reason == "OrderFilled"]
    posted_ids = [m for m in (re.search(r"client order id (\S+)\)", message) for message in filled) if m]
    assert len({m.group(1) for m in posted_ids}) == len(posted_ids) > 0


def test_a_live_run_waits_for_an_approval_annotation_then_trades(
    operator: OperatorThread, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    client.CoreV1Api(k8s_api).create_namespaced_secret(
        k8s_namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="binance-keys"), string_data={"apiKey": KEY, "secret": SECRET}
        ),
    )
    # A fast crossover: whatever stretch of the replay the session meets after the approval, it trades.
    overrides = {"exchange.credentialsSecretRef": {"name": "binance-keys"}, "strategy.params": {"fast": 3, "slow": 8}}
    body = manifest("eth-live", mode="live", **overrides)
    create_run(k8s_api, k8s_namespace, body)
    waiting = wait_for_run(k8s_api, k8s_namespace, "eth-live", phase_is("AwaitingApproval", "Failed"), "approval wait")
    assert waiting["status"]["phase"] == "AwaitingApproval", describe(waiting)
    assert simulator.stats()["orders_total"] == 0  # nothing is traded before the approval

    before = datetime.now(UTC)
    annotate(k8s_api, k8s_namespace, "eth-live", {"traiding.io/approved-by": "alice"})
    done = wait_for_run(k8s_api, k8s_namespace, "eth-live", phase_is("Succeeded", "Failed", "Cancelled"), "final phase")
    status = done["status"]
    assert status["phase"] == "Succeeded", describe(done)
    assert status["approval"]["approvedBy"] == "alice"
    assert datetime.fromisoformat(status["approval"]["approvedAt"]) >= before.replace(microsecond=0)
    assert conditions(done)["Approved"]["status"] == "True"
    assert "alice" in conditions(done)["Approved"]["message"]

    stats = simulator.stats()
    assert stats["orders_total"] > 0
    assert set(stats["orders_by_client_order_id"].values()) == {1}  # each real order placed once

    events = run_events(k8s_api, k8s_namespace, "eth-live")
    assert SECRET not in json.dumps(done)
    assert SECRET not in json.dumps([[e.reason, message_of(e)] for e in events])
    assert SECRET not in json.dumps(done["metadata"].get("annotations", {}))


def test_a_simulator_run_fails_when_no_simulator_is_configured(
    operator: OperatorThread, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    body = manifest("eth-nosim")
    del body["spec"]["exchange"]["simulator"]["name"]  # the default one, which this operator does not have
    create_run(k8s_api, k8s_namespace, body)
    done = wait_for_run(
        k8s_api, k8s_namespace, "eth-nosim", phase_is("Succeeded", "Failed", "Cancelled"), "final phase"
    )
    assert (done["status"]["phase"], done["status"]["reason"]) == ("Failed", "SimulatorNotConfigured"), describe(done)
    assert "TRAIDING_SIMULATORS" in done["status"]["message"] and "configured: test" in done["status"]["message"]
    assert simulator.stats()["requests_total"] == 0


def test_a_missing_secret_fails_the_api_check_naming_it(
    operator: OperatorThread, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    body = manifest("eth-nokeys", **{"exchange.credentialsSecretRef": {"name": "no-such-keys"}})
    create_run(k8s_api, k8s_namespace, body)
    done = wait_for_run(
        k8s_api, k8s_namespace, "eth-nokeys", phase_is("Succeeded", "Failed", "Cancelled"), "final phase"
    )
    status = done["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "CredentialsUnavailable"), describe(done)
    assert "Secret no-such-keys not found" in status["message"]
    # The data check and the backtest need no key; the keys' gate is the one that fails.
    assert {name: record["state"] for name, record in status["phases"].items()} == {
        "DataCheck": "Passed",
        "Backtest": "Passed",
        "ApiCheck": "Failed",
    }
    assert conditions(done)["Ready"]["status"] == "False"
    [event] = [
        e for e in wait_for_events(k8s_api, k8s_namespace, "eth-nokeys", "PhaseChanged", 3) if e.type == "Warning"
    ]
    assert "ApiCheck -> Failed" in message_of(event) and "no-such-keys" in message_of(event)


def test_the_cancel_annotation_cancels_a_trading_run(
    operator: OperatorThread, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    create_run(k8s_api, k8s_namespace, manifest("eth-cancel", **{"session.duration": "1d"}))
    wait_for_run(k8s_api, k8s_namespace, "eth-cancel", phase_is("Trading", "Failed", "Succeeded"), "Trading phase")
    # A spec edit mid-run is not applied, and the status says so.
    patch = {"spec": {"capital": {"initial": 5000}}}
    objects(k8s_api).patch_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, "eth-cancel", patch)

    def spec_change_noted(obj: dict[str, Any]) -> bool:
        return conditions(obj).get("SpecApplied", {}).get("status") == "False" or not phase_is("Trading")(obj)

    edited = wait_for_run(k8s_api, k8s_namespace, "eth-cancel", spec_change_noted, "SpecApplied=False", timeout=60)
    assert edited["status"]["phase"] == "Trading", describe(edited)
    assert edited["status"]["observedGeneration"] == 1
    assert "spec generation 2 is not applied" in conditions(edited)["SpecApplied"]["message"]
    assert edited["status"]["checkpoint"]["session"]["initial_equity"] == 10_000
    annotate(k8s_api, k8s_namespace, "eth-cancel", {"traiding.io/cancel": "true"})
    done = wait_for_run(
        k8s_api, k8s_namespace, "eth-cancel", phase_is("Succeeded", "Failed", "Cancelled"), "final phase", timeout=60
    )
    status = done["status"]
    assert (status["phase"], status["reason"]) == ("Cancelled", "Cancelled"), describe(done)
    assert status["phases"]["Trading"]["state"] == "Cancelled"
    assert "Reporting" not in status["phases"]
    assert conditions(done)["Ready"]["status"] == "False"


def test_an_exchange_id_ccxt_does_not_know_fails_the_run_naming_it(
    operator: OperatorThread, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    create_run(k8s_api, k8s_namespace, manifest("eth-noexchange", **{"exchange.id": "nosuchexchange"}))
    done = wait_for_run(k8s_api, k8s_namespace, "eth-noexchange", phase_is(*FINAL), "final phase", timeout=60)
    status = done["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "UnknownExchange"), describe(done)
    assert "unknown exchange id 'nosuchexchange'" in status["message"]


def test_a_run_whose_step_keeps_failing_ends_failed_with_the_reason_after_bounded_retries(
    operator_env: None, simulator: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    create_run(k8s_api, k8s_namespace, manifest("eth-broken"))
    body = get_run(k8s_api, k8s_namespace, "eth-broken")
    # A status no step can work with (a backtest without the data check's window): every step raises.
    body["status"] = {"phase": "Backtest", "phases": {"Backtest": {"state": "Running"}}}
    objects(k8s_api).replace_namespaced_custom_object_status(GROUP, VERSION, k8s_namespace, PLURAL, "eth-broken", body)
    running = OperatorThread(k8s_namespace).start()
    try:
        done = wait_for_run(k8s_api, k8s_namespace, "eth-broken", phase_is(*FINAL), "final phase", timeout=120)
    finally:
        running.stop()
    status = done["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "OperatorError"), describe(done)
    assert "failed 5 times in a row" in status["message"] and "no history window" in status["message"]
    [warning] = wait_for_events(k8s_api, k8s_namespace, "eth-broken", "OperatorError", 1)
    assert warning.type == "Warning"

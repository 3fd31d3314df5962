"""Security on the real control plane: approvals the API server enforces (the chart's ValidatingAdmissionPolicy,
people impersonated with their groups), the frozen spec only the operator writes, endpoints only from the
allowlist, the kill switch, and the operator and the nightly Job working under the chart's RBAC with 403s
outside it. The operator runs as the documented command with its ServiceAccount's token."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from tests.cluster_plugin import REPO, KubeCluster
from tests.integration.example_runs import started
from tests.integration.live_operator import (
    TRAIDING,
    LiveRuns,
    OperatorProcess,
    check_books,
    each_order_sent_once,
    holding_with_stop,
    live_run,
    phase_of,
)
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    OperatorThread,
    annotate,
    create_run,
    describe,
    get_run,
    operator_env,  # noqa: F401 - the fixture: KUBECONFIG and a candle cache for the operator
    phase_is,
    run_events,
    wait_for_run,
)
from traiding.pipeline.halt import HaltOrder
from traiding_operator.annotations import APPROVED_BY, CANCEL, CREATED_BY, RESUME
from traiding_operator.kill_switch import KILL_SWITCH_NAME, KillSwitches, KillSwitchUnreadable
from traiding_operator.kube import KubeCalls, api_client, client_configuration
from traiding_simulator import ApiKeyConfig, DataSource, SimulatorConfig, ThreadedSimulator

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("crd_installed")]

CHART = REPO / "helm" / "ai-traiding"
APPROVERS = "traiding-approvers"
FINAL = ("Succeeded", "Failed", "Cancelled")
SPEED = 600.0
LIVE_KEYS = {"mode": "live"}


# --- the chart in a test namespace -----------------------------------------------------------------------------
@dataclass
class Installed:
    """The chart's RBAC, ServiceAccounts and admission policies in `namespace`, and who is who there."""

    cluster: KubeCluster
    namespace: str
    fullname: str
    operator_kubeconfig: Path
    nightly_kubeconfig: Path

    @property
    def operator_user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"

    def as_user(self, user: str, group: str | None = None) -> client.ApiClient:
        """A client that the API server takes for `user` (in `group`): impersonation by the cluster's admin."""
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.cluster.kubeconfig)
        )
        api.set_default_header("Impersonate-User", user)  # type: ignore[no-untyped-call]
        if group:
            api.set_default_header("Impersonate-Group", group)  # type: ignore[no-untyped-call]
        return api

    def as_kubeconfig(self, path: Path) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]
        return api

    def operator(self, log_dir: Path, **env: str) -> OperatorProcess:
        """`traiding operator` as the chart runs it: its ServiceAccount, its namespace (the cluster-wide switch)."""
        settings = {"TRAIDING_OPERATOR_NAMESPACE": self.namespace, "TRAIDING_KILL_SWITCH_POLL_SECONDS": "0.5", **env}
        return OperatorProcess(
            self.cluster, self.namespace, log_dir, identity="op", kubeconfig=self.operator_kubeconfig, env=settings
        )


def helm_render(release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
    from tests.integration.test_chart import KUBE_VERSION, helm  # noqa: PLC0415 - helm's path lives there

    out = helm("template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
               "--set", "nightly.suspend=true", "--set", "simulator.enabled=false", *values).stdout  # fmt: skip
    keep = {"ServiceAccount", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    return [d for d in yaml.safe_load_all(out) if d and d["kind"] in keep]


def kubectl(cluster: KubeCluster, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [cluster.tool("kubectl"), *args], capture_output=True, text=True, check=False, env=cluster.env(), input=stdin
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def token_kubeconfig(cluster: KubeCluster, k8s_api: Any, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig with a token of the ServiceAccount (TokenRequest), as its Pod would have it mounted."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    status = client.CoreV1Api(k8s_api).create_namespaced_service_account_token(account, namespace, request).status
    assert status is not None
    token = status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [server],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": account, "context": {"cluster": server["name"], "user": account}}],
                "current-context": account,
            }
        )
    )
    return path


PEOPLE_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "people"},
    "rules": [
        {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "create", "patch", "update"]},
        {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["update", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "create", "update", "delete"]},
    ],
}


@pytest.fixture
def installed(kube_cluster: KubeCluster, k8s_api: Any, k8s_namespace: str, tmp_path: Path) -> Iterator[Installed]:
    """The chart's RBAC and admission policies for `k8s_namespace` (the release namespace and the one it serves),
    and people with the rights to edit TradingRuns there (RBAC lets them; the policy decides)."""
    release = f"s{uuid.uuid4().hex[:6]}"
    objects = helm_render(release, k8s_namespace)
    text = yaml.safe_dump_all(objects)
    kubectl(kube_cluster, "apply", "-n", k8s_namespace, "-f", "-", stdin=text)
    people = [{"kind": "User", "name": name} for name in ("alice", "bob", "carol", "mallory")]
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "people"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "people"},
        "subjects": people,
    }
    kubectl(kube_cluster, "apply", "-n", k8s_namespace, "-f", "-", stdin=yaml.safe_dump_all([PEOPLE_ROLE, binding]))
    fullname = f"{release}-ai-traiding"
    wait_for_policies(kube_cluster, k8s_namespace, fullname)
    try:
        yield Installed(
            kube_cluster,
            k8s_namespace,
            fullname,
            token_kubeconfig(kube_cluster, k8s_api, k8s_namespace, fullname, tmp_path / "operator.kubeconfig"),
            token_kubeconfig(
                kube_cluster, k8s_api, k8s_namespace, f"{fullname}-nightly", tmp_path / "nightly.kubeconfig"
            ),
        )
    finally:
        cluster_scoped = [o for o in objects if o["kind"].startswith("ValidatingAdmissionPolicy")]
        kubectl(kube_cluster, "delete", "--ignore-not-found", "-f", "-", stdin=yaml.safe_dump_all(cluster_scoped))


def wait_for_policies(cluster: KubeCluster, namespace: str, fullname: str) -> None:
    """A new policy is enforced once the API server has loaded it: probe with a request it must refuse."""
    deadline = time.monotonic() + 30
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": KILL_SWITCH_NAME}, "data": {"halt": "true"}}
    while time.monotonic() < deadline:
        result = subprocess.run(
            [cluster.tool("kubectl"), "create", "--dry-run=server", "--as", "mallory", "-f", "-", "-n", namespace],
            capture_output=True, text=True, check=False, env=cluster.env(), input=yaml.safe_dump(probe),
        )  # fmt: skip
        if f"{fullname}-kill-switch" in result.stderr:
            return
        time.sleep(0.3)
    pytest.fail(f"the admission policies of {fullname} were not enforced within 30 s")


def refused(call: Callable[[], Any]) -> str:
    """The API server's reason for refusing `call` (which must be refused)."""
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status in (403, 422), info.value
    return str(info.value.body)


def objects_of(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def live_body(name: str, creator: str | None, **overrides: Any) -> dict[str, Any]:
    body = live_run(name, symbols=["ETH/USDT"], **{"exchange.simulator.speed": SPEED, **overrides})
    if creator:
        body["metadata"]["annotations"] = {CREATED_BY: creator}
    return body


def set_phase_as(api: client.ApiClient, namespace: str, name: str, **status: Any) -> None:
    run = cast(dict[str, Any], objects_of(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
    run["status"] = {**run.get("status", {}), **status}
    objects_of(api).replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, run)


# --- approvals -------------------------------------------------------------------------------------------------
def test_the_api_server_lets_only_an_approver_other_than_the_creator_approve_a_run_waiting_at_its_gate(
    installed: Installed,
) -> None:
    ns = installed.namespace
    bob, alice = installed.as_user("bob"), installed.as_user("alice", APPROVERS)
    mallory, carol = installed.as_user("mallory"), installed.as_user("carol")
    bob_approver = installed.as_user("bob", APPROVERS)  # the creator, in the approvers group too
    operator = installed.as_kubeconfig(installed.operator_kubeconfig)

    def create(api: client.ApiClient, body: dict[str, Any]) -> Any:
        return lambda: objects_of(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)

    def approve(api: client.ApiClient, name: str) -> Any:
        patch = {"metadata": {"annotations": {APPROVED_BY: name}}}
        return lambda: objects_of(api).patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "gated", patch)

    assert "a live TradingRun must name its creator" in refused(create(bob, live_body("nameless", None)))
    assert "must name the user who creates the run (mallory), not bob" in refused(
        create(mallory, live_body("forged", "bob"))
    )
    preapproved = live_body("preapproved", "bob")
    preapproved["metadata"]["annotations"][APPROVED_BY] = "bob"
    assert "cannot be approved at creation" in refused(create(bob, preapproved))

    create(bob, live_body("gated", "bob"))()
    assert "once it waits in AwaitingApproval, after every gate passed" in refused(approve(alice, "alice"))
    # Only the operator writes status: its frozen spec, and its phase (a forged AwaitingApproval, say).
    frozen = {"checkpoint": {"spec": {"mode": "dry-run"}}}
    assert "may not change the frozen spec of a run (status.checkpoint.spec)" in refused(
        lambda: set_phase_as(mallory, ns, "gated", **frozen)
    )
    assert "mallory may not change the status of a run" in refused(
        lambda: set_phase_as(mallory, ns, "gated", phase="AwaitingApproval")
    )
    set_phase_as(operator, ns, "gated", phase="AwaitingApproval", checkpoint={"spec": {"mode": "live"}})
    assert "may not change the frozen spec" in refused(lambda: set_phase_as(bob, ns, "gated", **frozen))

    assert "carol may not approve live runs: only members of the group traiding-approvers" in refused(
        approve(carol, "carol")
    )
    assert "must name the approving user (alice), not dave" in refused(approve(alice, "dave"))
    assert "cannot be approved by the user who created it" in refused(approve(bob_approver, "bob"))
    relabel = {"metadata": {"annotations": {CREATED_BY: "carol"}}}
    assert "traiding.io/created-by is set once" in refused(
        lambda: objects_of(mallory).patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "gated", relabel)
    )
    approve(alice, "alice")()
    run = get_run(bob, ns, "gated")
    assert run["metadata"]["annotations"][APPROVED_BY] == "alice"


def keyed_simulator(shared_data: Path, accounts: list[str]) -> ThreadedSimulator:
    config = SimulatorConfig(
        data=[DataSource(path=shared_data / "ETH_USDT-5m.json")],
        speed=SPEED,
        log_requests=False,
        duplicate_client_order_id="open",
        initial_balances={"USDT": Decimal(20_000), "BNB": Decimal(0)},
        weight_limit=60_000,
        keys=[ApiKeyConfig(key=f"key-{a}", secret=SecretStr(f"secret-{a}-0123456789"), account=a) for a in accounts],
    )
    return started(config)


def keys_secret(k8s_api: Any, namespace: str, account: str) -> None:
    client.CoreV1Api(k8s_api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"{account}-keys"),
            string_data={"apiKey": f"key-{account}", "secret": f"secret-{account}-0123456789"},
        ),
    )


def test_under_the_chart_rbac_an_expired_approval_starts_nothing_and_a_fresh_one_is_recorded(
    installed: Installed, k8s_api: Any, shared_data: Path, tmp_path: Path
) -> None:
    ns = installed.namespace
    sim = keyed_simulator(shared_data, ["approved"])
    bob, alice = installed.as_user("bob"), installed.as_user("alice", APPROVERS)
    operator_api = installed.as_kubeconfig(installed.operator_kubeconfig)
    operator = installed.operator(tmp_path).start()
    try:
        keys_secret(k8s_api, ns, "approved")
        create_run(bob, ns, live_body("approved", "bob", **{"session.duration": "6h"}))
        waiting = wait_for_run(k8s_api, ns, "approved", phase_is("AwaitingApproval", *FINAL), "the gate", timeout=180)
        assert phase_of(waiting) == "AwaitingApproval", (describe(waiting), operator.log_tail())
        operator.stop()
        annotate(alice, ns, "approved", {APPROVED_BY: "alice"})
        # The approval is two days old by the operator's record (its time to live, 24h, is over).
        old = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        set_phase_as(operator_api, ns, "approved", checkpoint={
            **get_run(k8s_api, ns, "approved")["status"]["checkpoint"],
            "approvalSeen": {"approvedBy": "alice", "firstSeenAt": old},
        })  # fmt: skip
        operator.start()
        expired = wait_for_run(
            k8s_api, ns, "approved", lambda o: "expired" in (o["status"].get("message") or ""), "expiry", timeout=60
        )
        time.sleep(3)
        assert phase_of(get_run(k8s_api, ns, "approved")) == "AwaitingApproval", describe(expired)
        assert sim.orders("approved") == []  # an expired approval trades nothing

        annotate(alice, ns, "approved", {APPROVED_BY: None})  # type: ignore[dict-item]  # withdrawn ...
        wait_for_run(
            k8s_api, ns, "approved", lambda o: "approvalSeen" not in o["status"]["checkpoint"], "withdrawal", timeout=30
        )
        before = datetime.now(UTC).replace(microsecond=0)
        annotate(alice, ns, "approved", {APPROVED_BY: "alice"})  # ... and given again
        done = wait_for_run(k8s_api, ns, "approved", phase_is(*FINAL), "final phase", timeout=240)
        assert phase_of(done) == "Succeeded", (describe(done), operator.log_tail())
        check_books(sim, "approved", done["status"]["checkpoint"]["session"])
        assert each_order_sent_once(sim) == {}
    finally:
        operator.stop()
        sim.stop()
    approval = done["status"]["approval"]
    assert approval["approvedBy"] == "alice" and datetime.fromisoformat(approval["approvedAt"]) >= before
    approved = [e.message or "" for e in run_events(k8s_api, ns, "approved") if e.reason == "Approved"]
    assert approved and all(m.startswith("live trading approved by alice at ") for m in approved), approved


def test_the_operator_and_the_nightly_job_get_403_outside_the_chart_rbac(
    installed: Installed, k8s_api: Any, tmp_path: Path
) -> None:
    ns = installed.namespace
    operator = installed.as_kubeconfig(installed.operator_kubeconfig)
    nightly = installed.as_kubeconfig(installed.nightly_kubeconfig)
    core, runs = client.CoreV1Api(operator), client.CustomObjectsApi(operator)
    client.CoreV1Api(k8s_api).create_namespaced_secret(
        "default", client.V1Secret(metadata=client.V1ObjectMeta(name=f"elsewhere-{ns}"), string_data={"a": "b"})
    )
    try:
        forbidden: list[Callable[[], Any]] = [
            lambda: core.read_namespaced_secret(f"elsewhere-{ns}", "default"),  # Secrets of namespaces it serves only
            lambda: core.list_namespaced_secret(ns),  # never list
            lambda: core.read_namespaced_config_map("kube-root-ca.crt", ns),  # the kill switch, no other ConfigMap
            lambda: core.create_namespaced_pod(ns, client.V1Pod(metadata=client.V1ObjectMeta(name="x"))),
            lambda: runs.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "any"),
        ]
        for call in forbidden:
            with pytest.raises(ApiException) as info:
                call()
            assert info.value.status == 403, info.value
    finally:
        client.CoreV1Api(k8s_api).delete_namespaced_secret(f"elsewhere-{ns}", "default")

    # The nightly Job's identity creates runs (with `traiding submit`, which records it as the creator) and
    # may do nothing else.
    template = tmp_path / "nightly.yaml"
    body = live_body("ignored", None)
    body["spec"]["mode"] = "dry-run"
    body["metadata"] = {"generateName": "nightly-"}
    template.write_text(yaml.safe_dump(body))
    env = {**installed.cluster.env(), "KUBECONFIG": str(installed.nightly_kubeconfig)}
    submitted = subprocess.run(
        [TRAIDING, "submit", str(template), "-n", ns], capture_output=True, text=True, check=False, env=env
    )
    assert submitted.returncode == 0, submitted.stderr
    listing = cast(
        dict[str, Any], client.CustomObjectsApi(k8s_api).list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    )
    [run] = listing["items"]
    assert run["metadata"]["annotations"][CREATED_BY] == f"system:serviceaccount:{ns}:{installed.fullname}-nightly"
    nightly_runs, nightly_core = client.CustomObjectsApi(nightly), client.CoreV1Api(nightly)
    name = run["metadata"]["name"]
    for call in (
        lambda: nightly_runs.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name),
        lambda: nightly_runs.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name),
        lambda: nightly_runs.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {"spec": {}}),
        lambda: nightly_core.list_namespaced_secret(ns),
    ):
        with pytest.raises(ApiException) as info:
            call()
        assert info.value.status == 403, info.value


# --- the kill switch -------------------------------------------------------------------------------------------
def resting(sim: ThreadedSimulator, account: str) -> list[str]:
    return [o["clientOrderId"] for o in sim.orders(account) if o["status"] in ("NEW", "PARTIALLY_FILLED")]


def kill_switch(api: client.ApiClient, namespace: str, **data: str) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=KILL_SWITCH_NAME), data=data)
    client.CoreV1Api(api).create_namespaced_config_map(namespace, body)


def test_setting_the_kill_switch_halts_a_live_run_within_5s_and_clearing_it_resumes_nothing(
    installed: Installed, k8s_api: Any, shared_data: Path, tmp_path: Path
) -> None:
    ns = installed.namespace
    sim = keyed_simulator(shared_data, [])  # LiveRuns gives each run a key of its own
    bob, alice = installed.as_user("bob"), installed.as_user("alice", APPROVERS)
    runs = LiveRuns(bob, ns, sim, creator="bob", approver=(alice, "alice"))
    operator = installed.operator(tmp_path).start()
    try:
        runs.create("halted", symbols=["ETH/USDT"], **{"exchange.simulator.speed": SPEED, "session.duration": "7d"})
        holding = runs.wait("halted", holding_with_stop, "a position with its stop", timeout=240)
        amount = holding["status"]["checkpoint"]["session"]["positions"]["ETH/USDT"]["amount"]
        assert resting(sim, "halted") != []  # the protective stop rests on the exchange
        mallory = installed.as_user("mallory")
        assert "mallory may not set or change the kill switch" in refused(lambda: kill_switch(mallory, ns, halt="true"))

        set_at = time.monotonic()
        kill_switch(alice, ns, halt="true", reason="exchange incident")

        def halted(obj: dict[str, Any]) -> bool:
            return obj["status"].get("reason") == "Halted" and resting(sim, "halted") == []

        halted_run = runs.wait("halted", halted, "the halt with its orders cancelled", timeout=15)
        took = time.monotonic() - set_at
        assert took <= 5.0, f"halted after {took:.1f} s"
        session = halted_run["status"]["checkpoint"]["session"]
        assert session["positions"]["ETH/USDT"]["amount"] == amount  # no flatten asked: the position stays
        assert "exchange incident" in halted_run["status"]["message"]

        runs.create("refused", symbols=["ETH/USDT"], **{"exchange.simulator.speed": SPEED})
        refused_run = runs.wait("refused", lambda o: phase_of(o) in FINAL, "the refusal", timeout=60)
        assert (phase_of(refused_run), refused_run["status"]["reason"]) == ("Failed", "KillSwitch")
        assert sim.orders("refused") == []

        client.CoreV1Api(alice).delete_namespaced_config_map(KILL_SWITCH_NAME, ns)  # cleared ...
        orders = len(sim.orders("halted"))
        time.sleep(4)
        still = runs.get("halted")
        assert still["status"]["reason"] == "Halted" and "the switch is clear" in still["status"]["message"]
        assert len(sim.orders("halted")) == orders  # ... and nothing resumed by itself

        annotate(bob, ns, "halted", {RESUME: "1"})
        resumed = runs.wait("halted", lambda o: o["status"].get("reason") != "Halted", "the resume", timeout=30)
        assert {c["type"]: c for c in resumed["status"]["conditions"]}["Halted"]["status"] == "False"
        annotate(bob, ns, "halted", {CANCEL: "true"})
        done = runs.wait("halted", lambda o: phase_of(o) in FINAL, "final phase", timeout=120)
        assert phase_of(done) == "Cancelled", (describe(done), operator.log_tail())
        assert resting(sim, "halted") == [] and each_order_sent_once(sim) == {}
        check_books(sim, "halted", done["status"]["checkpoint"]["session"])
    finally:
        operator.stop()
        sim.stop()
    reasons = [e.reason for e in run_events(k8s_api, ns, "halted")]
    assert "Halted" in reasons and "Resumed" in reasons


# --- endpoints -------------------------------------------------------------------------------------------------
class Listener:
    """A TCP server that counts the connections it is offered (and answers none)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.socket.settimeout(0.2)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.socket.close()


@pytest.mark.usefixtures("operator_env")
def test_a_run_naming_an_endpoint_outside_the_allowlist_fails_before_any_request(
    k8s_api: Any, k8s_namespace: str, shared_data: Path
) -> None:
    listener = Listener()
    sim = started(SimulatorConfig(data=[DataSource(path=shared_data / "ETH_USDT-5m.json")], log_requests=False))
    operator = OperatorThread(k8s_namespace).start()  # allows the simulator `test` only, and binance
    runs = client.CustomObjectsApi(k8s_api)
    try:
        smuggled = live_body("smuggled", None, mode="dry-run", **{"exchange.simulator": {"url": listener.url}})
        with pytest.raises(ApiException) as info:  # what kubectl sends (strict): the field does not exist
            runs.create_namespaced_custom_object(
                GROUP, VERSION, k8s_namespace, PLURAL, smuggled, field_validation="Strict"
            )
        assert info.value.status == 400
        assert 'unknown field \\"spec.exchange.simulator.url\\"' in str(info.value.body)
        create_run(k8s_api, k8s_namespace, smuggled)  # other clients: the API server drops the field
        cases = {
            "smuggled": "SimulatorNotConfigured",
            "rogue": "SimulatorNotAllowed",
            "kraken": "ExchangeNotAllowed",
        }
        create_run(
            k8s_api, k8s_namespace, live_body("rogue", None, mode="dry-run", **{"exchange.simulator.name": "rogue"})
        )
        kraken = live_body("kraken", None, mode="dry-run", **{"exchange.id": "kraken"})
        del kraken["spec"]["exchange"]["simulator"]
        create_run(k8s_api, k8s_namespace, kraken)
        for name, reason in cases.items():
            done = wait_for_run(k8s_api, k8s_namespace, name, phase_is(*FINAL), "final phase", timeout=60)
            assert (phase_of(done), done["status"]["reason"]) == ("Failed", reason), describe(done)
            # Picked up (the first status says DataCheck before any work), then stopped: no candle was read.
            assert set(done["status"]["phases"]) <= {"Pending", "DataCheck"}
            assert not done["status"]["phases"].get("DataCheck", {}).get("results")
        requests = sim.stats()["requests_total"]
    finally:
        operator.stop()
        sim.stop()
        listener.close()
    assert listener.accepted == 0
    assert requests == 0


async def test_the_kill_switches_are_read_once_per_poll_and_an_unreadable_one_stops_the_step(
    installed: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(installed.operator_kubeconfig))  # the operator's own rights
    kube = KubeCalls(api_client(client_configuration()))
    switches = KillSwitches(kube, installed.namespace, poll_seconds=1.0)
    try:
        assert await switches.engaged(installed.namespace) is None
        kill_switch(installed.as_user("alice", APPROVERS), installed.namespace, halt="true", flatten="true")
        assert await switches.engaged(installed.namespace) is None  # within the poll: the answer read before
        await asyncio.sleep(1.1)
        source = f"ConfigMap {installed.namespace}/{KILL_SWITCH_NAME}"
        assert await switches.engaged(installed.namespace) == HaltOrder(source, flatten=True)
        with pytest.raises(KillSwitchUnreadable, match="HTTP 403"):  # a namespace it does not serve
            await switches.engaged("default")
    finally:
        kube.close()

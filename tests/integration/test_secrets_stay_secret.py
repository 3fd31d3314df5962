"""A known API key and secret never reach a log line, an Event, the status or any output, during full live
runs against the simulator: `traiding run` (its log files at debug level, its report) and the operator (its
JSON log, the runs' Kubernetes Events, status and annotations, the namespace's ConfigMaps and Leases), with the
keys encrypted at rest."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from pydantic import SecretStr

from tests.integration.example_runs import started
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    OperatorThread,
    annotate,
    create_run,
    describe,
    manifest,
    operator_env,  # noqa: F401 - the fixture: KUBECONFIG and a candle cache for the operator
    phase_is,
    wait_for_run,
)
from tests.integration.test_traiding_run import run_cli, write_manifest
from traiding.key_encryption import ENCRYPTION_ANNOTATION, KeyRing, generate_key
from traiding.telemetry.logs import configure_stream_logging
from traiding_simulator import ApiKeyConfig, DataSource, SimulatorConfig, ThreadedSimulator

KEY, SECRET = "known-live-key-5Rt8Qz", "known-live-secret-Jm4Wc9Xe2"
# A fast crossover: the session trades (real orders carry the key) whatever stretch of the replay it meets.
LIVE = {
    "mode": "live",
    "exchange.credentialsSecretRef": {"name": "binance-keys"},
    "strategy.params": {"fast": 3, "slow": 8},
}
FOREIGN = {"mode": "live", "exchange.credentialsSecretRef": {"name": "foreign-keys"}}
FINAL = ("Succeeded", "Failed", "Cancelled")


def live_simulator(shared_data: Path) -> ThreadedSimulator:
    config = SimulatorConfig(
        data=[DataSource(path=shared_data / "ETH_USDT-5m.json")],
        speed=3000,
        log_requests=False,
        keys=[ApiKeyConfig(key=KEY, secret=SecretStr(SECRET))],
        initial_balances={"USDT": Decimal(20_000), "BNB": Decimal(0)},
    )
    return started(config)


def assert_secret_free(where: str, text: str) -> None:
    for value in (KEY, SECRET):
        assert value not in text, f"{where} contains the {'API key' if value == KEY else 'secret'}"


def test_traiding_run_keeps_the_key_and_secret_out_of_every_file(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIDING_API_KEY", KEY)
    monkeypatch.setenv("TRAIDING_API_SECRET", SECRET)
    sim = live_simulator(shared_data)
    try:
        manifest_path = write_manifest(tmp_path, **LIVE, **{"session.duration": "1d"})
        output = tmp_path / "out"
        assert run_cli(manifest_path, output, "--verbose") == 3  # waits for the approval
        assert run_cli(manifest_path, output, "--resume", "--approve-live", "--verbose") == 0
        assert sim.stats()["orders_total"] > 0  # real (simulated) orders went out with the key
    finally:
        sim.stop()
    files = sorted(p for p in output.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"events.jsonl", "status.json", "summary.json", "report.html"}
    logs = {p.name: p.read_text() for p in (output / "logs").iterdir()}
    assert set(logs) == {"trading.log", "system.log", "errors.log"}
    assert '"OrderFilled"' in logs["trading.log"] and '"OrderFilled"' not in logs["system.log"]
    assert '"level": "DEBUG"' in logs["system.log"]  # the most talkative level was on
    assert all(logs[name] for name in ("trading.log", "system.log"))
    for path in files:
        assert_secret_free(str(path.relative_to(output)), path.read_text(errors="replace"))


@pytest.mark.k8s
@pytest.mark.usefixtures("crd_installed", "operator_env")
def test_the_operator_keeps_the_key_and_secret_out_of_logs_events_configmaps_and_the_objects(
    k8s_api: Any, k8s_namespace: str, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full live run whose keys are encrypted at rest (Fernet, under the operator's keys Secret), beside one
    whose Secret was encrypted under another key: that one fails its ApiCheck saying so. Then everything the run
    left in the cluster but the Secrets is scanned for the key and the secret."""
    operator_key = generate_key()
    ours, foreign = KeyRing([operator_key]), KeyRing([generate_key()])
    core = client.CoreV1Api(k8s_api)
    keys = client.V1Secret(metadata=client.V1ObjectMeta(name="traiding-keys"), string_data={"keys": operator_key})
    core.create_namespaced_secret(k8s_namespace, keys)
    for name, ring in (("binance-keys", ours), ("foreign-keys", foreign)):
        core.create_namespaced_secret(
            k8s_namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name, annotations={ENCRYPTION_ANNOTATION: "fernet"}),
                string_data={"apiKey": ring.encrypt(KEY), "secret": ring.encrypt(SECRET)},
            ),
        )
    monkeypatch.setenv("TRAIDING_OPERATOR_NAMESPACE", k8s_namespace)
    monkeypatch.setenv("TRAIDING_KEYS_SECRET", "traiding-keys")
    monkeypatch.setenv("TRAIDING_REQUIRE_ENCRYPTED_KEYS", "true")
    log = io.StringIO()
    previous = logging.getLogger().handlers[:]
    configure_stream_logging(logging.DEBUG, stream=log)  # the operator's own setup, at debug level
    sim = live_simulator(shared_data)
    operator = OperatorThread(k8s_namespace).start()
    try:
        create_run(k8s_api, k8s_namespace, manifest("eth-live", **LIVE))
        create_run(k8s_api, k8s_namespace, manifest("eth-foreign", **FOREIGN))
        wait_for_run(k8s_api, k8s_namespace, "eth-live", phase_is("AwaitingApproval", "Failed"), "approval wait")
        annotate(k8s_api, k8s_namespace, "eth-live", {"traiding.io/approved-by": "alice"})
        done = wait_for_run(k8s_api, k8s_namespace, "eth-live", phase_is(*FINAL), "final phase")
        assert done["status"]["phase"] == "Succeeded", describe(done)
        wrong = wait_for_run(k8s_api, k8s_namespace, "eth-foreign", phase_is(*FINAL), "final phase")
        assert sim.stats()["orders_total"] > 0
    finally:
        operator.stop()
        sim.stop()
        logging.getLogger().handlers[:] = previous
    status = wrong["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "CredentialsUnavailable"), describe(wrong)
    assert status["phases"]["ApiCheck"]["state"] == "Failed"
    assert "key 'apiKey' cannot be decrypted with the operator's keys (Secret traiding-keys" in status["message"]

    events = core.list_namespaced_event(k8s_namespace).items
    assert any(e.reason == "OrderFilled" for e in events)
    assert_secret_free("the Events", json.dumps([[e.reason, e.message, e.type] for e in events]))
    runs = client.CustomObjectsApi(k8s_api).list_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL)
    assert_secret_free("the TradingRuns (status, annotations)", json.dumps(runs))
    config_maps = core.list_namespaced_config_map(k8s_namespace).items
    assert_secret_free("the ConfigMaps", json.dumps([c.data for c in config_maps]))
    leases = client.CoordinationV1Api(k8s_api).list_namespaced_lease(k8s_namespace).items
    assert_secret_free("the Leases", json.dumps([lease.to_dict() for lease in leases], default=str))
    lines = log.getvalue()
    assert '"level": "DEBUG"' in lines and "eth-live" in lines
    assert_secret_free("the operator's log", lines)

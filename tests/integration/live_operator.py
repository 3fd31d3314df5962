"""Live runs driven by real `traiding operator` processes, against the real control plane and the simulator.

`OperatorProcess` runs the documented command (`traiding operator --namespace NS`) as a subprocess that a test
may SIGKILL; `LiveRuns` creates live runs (a Secret, a simulator key and account per run), approves each once it
waits at its gate (as a person would: an approval given earlier never counts), and checks a run's books
against the simulator's own record of its account, order by order.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from pydantic import SecretStr

from tests.cluster_plugin import KubeCluster
from tests.integration.example_runs import example_run
from tests.integration.test_operator import GROUP, PLURAL, VERSION, annotate, create_run, describe, get_run
from traiding.pipeline.crash_points import CRASH_AT_ENV
from traiding_operator.annotations import APPROVED_BY, CREATED_BY
from traiding_operator.lease import lease_name
from traiding_simulator import ApiKeyConfig, ThreadedSimulator

TRAIDING = str(Path(sys.executable).parent / "traiding")
FINAL = ("Succeeded", "Failed", "Cancelled")
STARTED_LINE = b"traiding operator started"  # the operator's start-up handler logs it (handlers.start)


@dataclass
class OperatorProcess:
    """`traiding operator` in a subprocess: started, SIGKILLed, started again, with its logs in a file."""

    kube_cluster: KubeCluster
    namespace: str
    log_dir: Path
    identity: str
    lease_seconds: int = 15
    crash_at: str | None = None  # TRAIDING_TEST_CRASH_AT for the next start
    kubeconfig: Path | None = None  # whose identity it runs as (default: the cluster's admin)
    env: dict[str, str] = field(default_factory=dict)  # more settings (TRAIDING_...)
    extra_args: tuple[str, ...] = ()  # e.g. ("--shard", "a")
    metrics_port: int = 0  # 0: no /metrics
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: Any = field(default=None, repr=False)
    _log_offset: int = 0  # where this start's lines begin in the log file

    def start(self) -> OperatorProcess:
        self.starts += 1
        env = {**self.kube_cluster.env(), **self.env}
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        env["TRAIDING_CACHE_DIR"] = str(self.log_dir / "cache")
        env.pop(CRASH_AT_ENV, None)
        # Several operator processes share this machine's network: no /metrics port each unless asked (0: none).
        env["TRAIDING_METRICS_PORT"] = str(self.metrics_port)
        if self.crash_at:
            env[CRASH_AT_ENV] = self.crash_at
        self._log = self._log_path.open("ab")
        self._log_offset = self._log.tell()
        self._log.write(f"--- start {self.starts} (crash at: {self.crash_at}) ---\n".encode())
        self._log.flush()
        command = [
            TRAIDING,
            "operator",
            "--namespace",
            self.namespace,
            "--identity",
            self.identity,
            "--lease-seconds",
            str(self.lease_seconds),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful stop, as an OOM kill or a node failure."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._close_log()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(30)
        self._close_log()

    def wait_started(self, timeout: float = 60.0) -> bool:
        """Wait until this start's process has logged its start-up handler's line (imports, login and the
        operator's runtime are done; from here it resumes its runs) or has died. True when it started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.died_by_itself():
            with self._log_path.open("rb") as log:
                log.seek(self._log_offset)
                if STARTED_LINE in log.read():
                    return True
            time.sleep(0.05)
        return False

    @property
    def _log_path(self) -> Path:
        return self.log_dir / f"operator-{self.identity}.log"

    def died_by_itself(self) -> bool:
        """Whether it exited without us (the crash hook SIGKILLs the process itself)."""
        return self.process is not None and self.process.poll() is not None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        path = self._log_path
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def live_run(name: str, *, symbols: list[str], **overrides: Any) -> dict[str, Any]:
    """A live run against the test's simulator with gates that any market passes (this is about orders, not about
    strategies); `overrides` as dotted paths."""
    settings: dict[str, Any] = {
        "mode": "live",
        "exchange.credentialsSecretRef": {"name": f"{name}-keys"},
        "market.symbols": symbols,
        "strategy.params": {"fast": 3, "slow": 8},
        "risk": {"maxPositionFraction": round(0.9 / len(symbols), 3), "stopLossPct": 1, "maxDrawdownPct": 50},
        "gates.dataCheck.lookback": "2d",
        "gates.backtest": {"minTrades": 0, "minSharpe": None, "maxDrawdownPct": None},
        **overrides,
    }
    document = example_run(**settings)
    document["metadata"] = {"name": name}
    return document


class LiveRuns:
    """Live runs in one namespace, each trading its own simulator account with its own key."""

    def __init__(
        self,
        k8s_api: Any,
        namespace: str,
        sim: ThreadedSimulator,
        *,
        creator: str | None = None,
        approver: tuple[Any, str] | None = None,
    ) -> None:
        """`k8s_api` creates the runs (as `creator`, recorded in traiding.io/created-by when given); `approver`,
        a client and the user it is, approves them (default: `k8s_api` as "test")."""
        self.k8s_api = k8s_api
        self.namespace = namespace
        self.sim = sim
        self.creator = creator
        self.approver = approver or (k8s_api, "test")

    def create(self, name: str, *, symbols: list[str], **overrides: Any) -> None:
        key, secret = f"key-{name}", f"secret-{name}-0123456789"
        self.sim.add_key(ApiKeyConfig(key=key, secret=SecretStr(secret), account=name))
        client.CoreV1Api(self.k8s_api).create_namespaced_secret(
            self.namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=f"{name}-keys"), string_data={"apiKey": key, "secret": secret}
            ),
        )
        document = live_run(name, symbols=symbols, **overrides)
        if self.creator:
            document["metadata"]["annotations"] = {CREATED_BY: self.creator}
        create_run(self.k8s_api, self.namespace, document)

    def get(self, name: str) -> dict[str, Any]:
        """The run as stored; one waiting at its approval gate is approved (once)."""
        obj = get_run(self.k8s_api, self.namespace, name)
        if phase_of(obj) == "AwaitingApproval" and APPROVED_BY not in obj["metadata"].get("annotations", {}):
            api, user = self.approver
            annotate(api, self.namespace, name, {APPROVED_BY: user})
        return obj

    def session(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status", {}).get("checkpoint", {}).get("session", {}))

    def lease_holder(self, name: str) -> str | None:
        try:
            lease = client.CoordinationV1Api(self.k8s_api).read_namespaced_lease(lease_name(name), self.namespace)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise
        return lease.spec.holder_identity if lease.spec else None

    def wait(self, name: str, condition: Callable[[dict[str, Any]], bool], what: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        obj: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            obj = self.get(name)
            if condition(obj):
                return obj
            time.sleep(0.25)
        pytest.fail(f"{name}: no {what} within {timeout:.0f} s; last seen {describe(obj)}", pytrace=False)

    def delete(self, name: str) -> None:
        client.CustomObjectsApi(self.k8s_api).delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )

    def wait_gone(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.gone(name) and time.monotonic() < deadline:
            time.sleep(0.25)
        return self.gone(name)

    def gone(self, name: str) -> bool:
        try:
            self.get(name)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    def check_books(self, name: str, session: dict[str, Any]) -> int:
        return check_books(self.sim, name, session)


def check_books(sim: ThreadedSimulator, account: str, session: dict[str, Any]) -> int:
    """The run's books hold exactly what the exchange executed for its account, order by order, to the cent;
    nothing of the run rests on the exchange. Returns how many orders filled."""
    orders = {o["clientOrderId"]: o for o in sim.orders(account)}
    filled = {coid: o for coid, o in orders.items() if Decimal(o["executedQty"]) > 0}
    booked = session["orders"]
    assert set(booked) == set(filled), f"{account}: booked and executed orders differ"
    for coid, order in filled.items():
        quantity, cost = float(order["executedQty"]), float(order["cummulativeQuoteQty"])
        record = booked[coid]
        assert record["filled"] == pytest.approx(quantity, abs=1e-9), coid
        assert record["cost"] == pytest.approx(cost, abs=0.01), coid
        commission = sum(
            float(amount) * (cost / quantity if asset != "USDT" else 1.0)
            for asset, amount in order["commission"].items()
        )
        assert record["fee_quote"] == pytest.approx(commission, abs=0.01), coid
    resting = [coid for coid, o in orders.items() if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    assert resting == [], f"{account}: orders still open on the exchange: {resting}"
    balances = sim.balances(account)
    for symbol in session["positions"]:
        base = symbol.split("/")[0]
        left = float(sum(balances.get(base, (Decimal(0), Decimal(0)))))
        assert left == pytest.approx(session.get("dust", {}).get(symbol, 0.0), abs=1e-9), f"{account}: {base}"
    return len(filled)


def each_order_sent_once(sim: ThreadedSimulator) -> dict[str, int]:
    """Client order ids the exchange accepted more than once (Binance's rule lets a filled id be reused)."""
    counts: dict[str, int] = sim.stats()["orders_by_client_order_id"]
    return {coid: n for coid, n in counts.items() if n != 1}


def phase_of(obj: dict[str, Any]) -> str:
    return str(obj.get("status", {}).get("phase", "Pending"))


def holding_with_stop(obj: dict[str, Any]) -> bool:
    session = obj.get("status", {}).get("checkpoint", {}).get("session", {})
    return phase_of(obj) == "Trading" and any(
        p["amount"] > 0 and p.get("stop_order") for p in session.get("positions", {}).values()
    )

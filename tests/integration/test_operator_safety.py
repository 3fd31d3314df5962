"""Money safety of live runs under a second operator, deletion and downtime: real operator processes, the real
control plane, the simulator with Binance's rule for reused client order ids (a duplicate would go through)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cluster_plugin import KubeCluster
from tests.integration.example_runs import started
from tests.integration.live_operator import (
    FINAL,
    LiveRuns,
    OperatorProcess,
    each_order_sent_once,
    holding_with_stop,
    phase_of,
)
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from tests.integration.test_operator import (  # noqa: F401 - operator_env is a fixture
    GROUP,
    PLURAL,
    VERSION,
    OperatorThread,
    objects,
    operator_env,
    run_events,
)
from traiding_simulator import DataSource, SimulatorConfig, ThreadedSimulator

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("crd_installed")]

SPEED = 600.0  # 5m candles every half second


def simulator(data: list[DataSource], **changes: Any) -> ThreadedSimulator:
    settings: dict[str, Any] = {
        "speed": SPEED,
        "log_requests": False,
        "duplicate_client_order_id": "open",  # as Binance: the id of a filled order may be used again
        "initial_balances": {"USDT": Decimal(20_000), "BNB": Decimal(0)},
        "weight_limit": 60_000,  # every run shares the test's loopback address
    }
    config = SimulatorConfig(data=data, **{**settings, **changes})
    return started(config)


@pytest.fixture
def eth_sim(shared_data: Path) -> Iterator[ThreadedSimulator]:
    sim = simulator([DataSource(path=shared_data / "ETH_USDT-5m.json")])
    yield sim
    sim.stop()


@pytest.fixture
def runs(k8s_api: Any, k8s_namespace: str, eth_sim: ThreadedSimulator) -> LiveRuns:
    return LiveRuns(k8s_api, k8s_namespace, eth_sim)


def fast(**overrides: Any) -> dict[str, Any]:
    return {"exchange.simulator.speed": SPEED, **overrides}


def test_two_operators_one_drives_the_other_waits_and_takes_over_when_it_dies(
    kube_cluster: KubeCluster, k8s_namespace: str, runs: LiveRuns, eth_sim: ThreadedSimulator, tmp_path: Path
) -> None:
    first = OperatorProcess(kube_cluster, k8s_namespace, tmp_path, identity="op-a", lease_seconds=5).start()
    second = OperatorProcess(kube_cluster, k8s_namespace, tmp_path, identity="op-b", lease_seconds=5)
    try:
        runs.create("handover", symbols=["ETH/USDT"], **fast(**{"session.duration": "12h"}))
        runs.wait("handover", lambda o: phase_of(o) == "Trading", "Trading", timeout=120)
        assert runs.lease_holder("handover") == "op-a"
        second.start()
        trading_since = len(runs.session("handover").get("orders", {}))
        for _ in range(12):  # 6 s, past the lease's duration: op-b waits, op-a keeps driving
            time.sleep(0.5)
            assert runs.lease_holder("handover") == "op-a"
        assert phase_of(runs.get("handover")) in ("Trading", *FINAL)
        first.kill()
        killed = time.monotonic()
        runs.wait("handover", lambda o: runs.lease_holder("handover") == "op-b" or phase_of(o) in FINAL, "handover", 30)
        taken_over = time.monotonic() - killed
        done = runs.wait("handover", lambda o: phase_of(o) in FINAL, "final phase", timeout=240)
    finally:
        first.stop()
        second.stop()
    assert phase_of(done) == "Succeeded", (done["status"].get("message"), second.log_tail())
    assert taken_over < 15, "op-b takes over within about the lease's duration"
    assert each_order_sent_once(eth_sim) == {}
    session = done["status"]["checkpoint"]["session"]
    assert len(session["orders"]) > trading_since, "trading went on under op-b"
    assert runs.check_books("handover", session) > 0


def wait_holding(runs: LiveRuns, name: str) -> dict[str, Any]:
    return runs.wait(name, holding_with_stop, "open position with its stop on the exchange", timeout=180)


def trading_eth_with_a_position(runs: LiveRuns, sim: ThreadedSimulator, name: str) -> dict[str, Any]:
    """A Trading run holding ETH with its stop resting on the exchange, in a market that stands still.

    At 600x a candle passes every half second, so a position the status shows may be gone (stopped out, or sold on
    a signal) by the time the test acts on it: on a slow machine it was. The market stops (speed 0) once a position
    shows; a moment later the position's stop must still rest, or the market runs on to the next position. Tests
    that need the market again call `sim.set_clock(speed=SPEED)`.
    """
    runs.create(name, symbols=["ETH/USDT"], **fast(**{"session.duration": "7d"}))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        holding = wait_holding(runs, name)
        sim.set_clock(speed=0.0)
        time.sleep(1)  # a candle the session had already read is acted on
        stops = {p["stop_order"] for p in holding["status"]["checkpoint"]["session"]["positions"].values()}
        if stops & set(resting_orders(sim, name)):
            return holding
        sim.set_clock(speed=SPEED)
        time.sleep(0.5)
    raise AssertionError(f"{name}: no position held still long enough to act on")


def resting_orders(sim: ThreadedSimulator, account: str) -> list[str]:
    return [o["clientOrderId"] for o in sim.orders(account) if o["status"] in ("NEW", "PARTIALLY_FILLED")]


def assert_flat(sim: ThreadedSimulator, account: str) -> None:
    """No order of the run rests on the exchange and at most the dust below one lot step of ETH is left."""
    assert resting_orders(sim, account) == []
    assert float(sum(sim.balances(account)["ETH"])) < 0.001
    assert each_order_sent_once(sim) == {}


@pytest.mark.usefixtures("operator_env")
def test_deleting_a_trading_run_closes_its_positions_and_orders_before_it_goes(
    k8s_api: Any, k8s_namespace: str, runs: LiveRuns, eth_sim: ThreadedSimulator
) -> None:
    operator = OperatorThread(k8s_namespace).start()
    try:
        holding = trading_eth_with_a_position(runs, eth_sim, "deleted")
        assert resting_orders(eth_sim, "deleted") != []  # the protective stop
        runs.delete("deleted")
        assert runs.wait_gone("deleted", timeout=60), "the finalizer goes once the run is flat"
    finally:
        operator.stop()
    assert_flat(eth_sim, "deleted")
    messages = [e.message or "" for e in run_events(k8s_api, k8s_namespace, "deleted") if e.reason == "PhaseChanged"]
    assert any("Trading -> Liquidating: deleted during Trading" in m for m in messages), messages
    assert any(m.startswith("Liquidating -> Cancelled") for m in messages), messages
    assert holding["status"]["checkpoint"]["session"]["positions"]["ETH/USDT"]["amount"] > 0


@pytest.mark.usefixtures("operator_env")
def test_a_run_that_cannot_exit_stays_liquidating_with_a_warning_until_it_can(
    k8s_api: Any, k8s_namespace: str, runs: LiveRuns, eth_sim: ThreadedSimulator
) -> None:
    operator = OperatorThread(k8s_namespace).start()
    try:
        trading_eth_with_a_position(runs, eth_sim, "stuck")
        eth_sim.set_faults(error_rate=1.0, paths=["/api/v3/order"], seed=1)  # no order can be placed or cancelled
        runs.delete("stuck")

        def refused_twice(obj: dict[str, Any]) -> bool:
            return phase_of(obj) == "Liquidating" and obj["status"]["phases"]["Liquidating"]["attempts"] >= 2

        stuck = runs.wait("stuck", refused_twice, "refused exits", timeout=120)
        time.sleep(2)
        assert not runs.gone("stuck") and phase_of(runs.get("stuck")) == "Liquidating"
        liquidated = {c["type"]: c for c in stuck["status"]["conditions"]}["Liquidated"]
        assert (liquidated["status"], liquidated["reason"]) == ("False", "ExitRefused")
        warnings = [e for e in run_events(k8s_api, k8s_namespace, "stuck") if e.reason == "ExitRefused"]
        assert warnings and all(e.type == "Warning" for e in warnings)
        eth_sim.set_faults(error_rate=0.0, paths=None)
        assert runs.wait_gone("stuck", timeout=120), "once the exchange takes orders again the run exits and goes"
    finally:
        operator.stop()
    assert_flat(eth_sim, "stuck")


@pytest.mark.usefixtures("operator_env")
def test_a_run_deleted_while_no_operator_runs_is_liquidated_when_one_comes_back(
    k8s_api: Any, k8s_namespace: str, runs: LiveRuns, eth_sim: ThreadedSimulator
) -> None:
    first = OperatorThread(k8s_namespace).start()
    try:
        trading_eth_with_a_position(runs, eth_sim, "orphan")
    finally:
        first.stop()
    runs.delete("orphan")
    time.sleep(2)
    waiting = runs.get("orphan")
    assert waiting["metadata"].get("deletionTimestamp"), "deleted, but held by the finalizer"
    assert resting_orders(eth_sim, "orphan") != []
    eth_sim.set_clock(speed=SPEED)  # the market runs on while the deleted run waits for an operator
    second = OperatorThread(k8s_namespace).start()
    try:
        assert runs.wait_gone("orphan", timeout=60)
    finally:
        second.stop()
    assert_flat(eth_sim, "orphan")


# --- two hours without an operator ------------------------------------------------------------------------------

FIVE_MINUTES = 300_000
PERIOD = 24  # candles: 2 hours


def sawtooth_market(path: Path, start_ms: int, days: int) -> np.ndarray:
    """ETH-like 5m candles repeating every 2 hours: a slow rise of 3% over 90 minutes, a crash to 5% below the
    start within 15 minutes, and a recovery; with noise. Any long position opened in one period is stopped out
    (stop 1% below entry) by the next crash, and every period has fresh entry signals."""
    rng = np.random.default_rng(11)
    count = days * 288
    phase = np.arange(count) % PERIOD
    shape = np.where(phase < 18, 0.03 * phase / 18, 0.0)
    shape = np.where((phase >= 18) & (phase < 21), 0.03 - 0.08 * (phase - 17) / 3, shape)
    shape = np.where(phase >= 21, -0.05 + 0.05 * (phase - 20) / 3, shape)
    close = 2000.0 * (1 + shape) * (1 + rng.normal(0, 0.0015, count))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0005, count)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0005, count)))
    times = start_ms + np.arange(count) * FIVE_MINUTES
    rows = [
        [int(t), round(float(o), 2), round(float(h), 2), round(float(lo), 2), round(float(c), 2), 10.0]
        for t, o, h, lo, c in zip(times, open_, high, low, close, strict=True)
    ]
    path.write_text(json.dumps(rows))
    return np.array([r[3] for r in rows])  # the lows


def test_after_two_hours_without_an_operator_the_stop_held_and_no_old_signal_is_traded(
    kube_cluster: KubeCluster, k8s_namespace: str, k8s_api: Any, tmp_path: Path
) -> None:
    start_ms = 1_700_006_400_000 // (PERIOD * FIVE_MINUTES) * (PERIOD * FIVE_MINUTES)
    lows = sawtooth_market(tmp_path / "ETH_USDT-5m.json", start_ms, days=8)
    sim = simulator([DataSource(path=tmp_path / "ETH_USDT-5m.json")], start=start_ms + 3 * 86_400_000)
    runs = LiveRuns(k8s_api, k8s_namespace, sim)
    operator = OperatorProcess(kube_cluster, k8s_namespace, tmp_path, identity="op-1", lease_seconds=5).start()
    try:
        runs.create(
            "away",
            symbols=["ETH/USDT"],
            **fast(**{"session.duration": "1d", "gates.dataCheck.maxOutlierRatio": 0.05}),
        )
        while True:  # a position whose stop the market reaches within the next two hours
            holding = wait_holding(runs, "away")
            position = holding["status"]["checkpoint"]["session"]["positions"]["ETH/USDT"]
            stop = next(o for o in sim.orders("away") if o["clientOrderId"] == position["stop_order"])
            # the candle the replay is in, counted in the file (the replay shows it on today's date)
            candle = (sim.simulator.replay_now() - sim.simulator.state.shift_ms - start_ms) // FIVE_MINUTES
            ahead = lows[candle + 1 : candle + PERIOD - 2]
            if ahead.min() < float(stop["stopPrice"]):
                break
            time.sleep(1)
        operator.kill()
        away_from = sim.simulator.replay_now()
        time.sleep(2 * 3600 / SPEED)
        back_at = sim.simulator.replay_now()
        stopped = next(o for o in sim.orders("away") if o["clientOrderId"] == position["stop_order"])
        operator.start()
        done = runs.wait("away", lambda o: phase_of(o) in FINAL, "final phase", timeout=240)
        operator.stop()
        check_the_time_away(
            runs,
            k8s_api,
            k8s_namespace,
            done=done,
            position=position,
            stopped=stopped,
            away_from=away_from,
            back_at=back_at,
        )
    finally:
        operator.stop()
        sim.stop()


def check_the_time_away(
    runs: LiveRuns,
    k8s_api: Any,
    namespace: str,
    *,
    done: dict[str, Any],
    position: dict[str, Any],
    stopped: dict[str, Any],
    away_from: int,
    back_at: int,
) -> None:
    # While no operator ran, the stop resting on the exchange filled when the price crossed it.
    assert stopped["status"] == "FILLED", stopped
    assert away_from < stopped["updateTime"] < back_at
    assert float(stopped["price"]) <= float(stopped["cummulativeQuoteQty"]) / float(stopped["executedQty"])
    session = done["status"]["checkpoint"]["session"]
    assert phase_of(done) == "Succeeded", done["status"].get("message")
    [exit_] = [t for t in session["trades"] if t["entry_time"] == position["entry_time"]]
    assert exit_["reason"] == "stop_loss"
    assert away_from - FIVE_MINUTES <= exit_["exit_time"] < back_at
    # No order for a signal of the two hours away: everything after the return acts on candles after it.
    after = [r for r in session["orders"].values() if r["candle_time"] > away_from and r["reason"] != "stop_loss"]
    assert after, "the session traded on after the return"
    assert all(r["candle_time"] >= back_at - FIVE_MINUTES for r in after), after
    skipped = [e for e in run_events(k8s_api, namespace, "away") if e.reason == "SignalsSkipped"]
    assert skipped, "the signals of the candles that closed while away were logged as skipped"
    assert each_order_sent_once(runs.sim) == {}
    assert runs.check_books("away", session) > 0

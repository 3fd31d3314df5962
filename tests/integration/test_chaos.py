"""Chaos: live runs on three symbols while the operator is SIGKILLed at random moments, again and again.

The operator is the real `traiding operator` process; it is killed at random moments (at least 30 times) and
restarted each time, as a container that crashes and is restarted in its Pod (same identity). Some of its
lives also run with the crash hook, which makes the process kill itself right after an order's send returned
and before anything about it was written: the worst moment for exactly-once orders. The simulator follows
Binance's rule for client order ids (a filled order's id may be used again), so a second send of an intent
would really execute. Afterwards: every run finished, the exchange accepted each client order id once, and
each run's books equal the exchange's record of its account, order by order, to the cent.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_plugin import KubeCluster
from tests.integration.live_operator import FINAL, LiveRuns, OperatorProcess, each_order_sent_once, phase_of
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from tests.integration.test_operator_safety import simulator
from traiding_simulator import DataSource, ThreadedSimulator

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.usefixtures("crd_installed")]

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
RUNS = ["chaos-a", "chaos-b", "chaos-c"]
SPEED = 300.0  # the simulator's: a day of 5m candles in 288 s, at least 30 lives where a start-up takes 5 s
MIN_KILLS = 30
LIFE_MIN, LIFE_MAX = 1.0, 4.0  # seconds an operator process lives after its start-up, before the next kill
EARLY_DEATHS = 0.1  # the share of lives killed while the process starts (before its start-up handler ran)
HOOK = "after-send:0.25"  # a life with the hook dies at about every fourth order it sends
TIMEOUT = 900.0


@pytest.fixture
def market(shared_data: Path) -> Iterator[ThreadedSimulator]:
    sim = simulator([DataSource(path=shared_data / f"{s.replace('/', '_')}-5m.json") for s in SYMBOLS], speed=SPEED)
    yield sim
    sim.stop()


def test_sigkilled_at_random_moments_the_operator_sends_each_order_once_and_books_every_fill(
    kube_cluster: KubeCluster, k8s_api: Any, k8s_namespace: str, market: ThreadedSimulator, tmp_path: Path
) -> None:
    dice = random.Random(15)
    runs = LiveRuns(k8s_api, k8s_namespace, market)
    operator = OperatorProcess(kube_cluster, k8s_namespace, tmp_path, identity="operator-0", lease_seconds=5)
    kills = hook_kills = 0
    start_seconds: list[float] = []
    started = time.monotonic()
    try:
        operator.start()
        for name in RUNS:
            runs.create(name, symbols=SYMBOLS, **{"exchange.simulator.speed": SPEED, "session.duration": "1d"})
        # Every run is read each round (a run waiting at its gate is approved then): `all` over a generator
        # would stop at the first unfinished run and leave the others waiting for their approval.
        while not all([phase_of(runs.get(name)) in FINAL for name in RUNS]):
            assert time.monotonic() - started < TIMEOUT, f"runs not finished after {TIMEOUT:.0f} s"
            # Most lives count from the operator's start-up (imports and login done): on a slow machine these
            # take seconds, and lives that mostly imported would leave the sessions, which act on the newest
            # closed candle after downtime, hardly trading between kills. Some die while starting.
            starting = time.monotonic()
            if dice.random() < EARLY_DEATHS:
                life = dice.uniform(0.1, 1.5)
            else:
                assert operator.wait_started() or operator.died_by_itself(), operator.log_tail()
                start_seconds.append(time.monotonic() - starting)
                life = dice.uniform(LIFE_MIN, LIFE_MAX)
            life_started = time.monotonic()
            while time.monotonic() - life_started < life and not operator.died_by_itself():
                time.sleep(0.05)
            if operator.died_by_itself():
                assert operator.process is not None and operator.process.returncode == -9, operator.log_tail()
                hook_kills += 1
            else:
                operator.kill()
                kills += 1
            operator.crash_at = HOOK if dice.random() < 0.3 else None
            operator.start()
        finished = time.monotonic() - started
    finally:
        operator.stop()
    print(
        f"chaos: {kills} kills by the test, {hook_kills} by the hook after a send, in {finished:.0f} s;"
        f" start-up {sum(start_seconds) / len(start_seconds):.1f} s on average"
    )
    for name in RUNS:  # what a failure is read from
        record = {"run": runs.get(name), "exchange": market.orders(name), "balances": market.balances(name)}
        (tmp_path / f"{name}.json").write_text(json.dumps(record, indent=1, default=str))
    assert kills + hook_kills >= MIN_KILLS, "the session ended before the operator was killed often enough"
    assert hook_kills >= 1, "no kill landed between an order's send and its status write"
    assert each_order_sent_once(market) == {}, "an intent was sent twice"
    filled = 0
    for name in RUNS:
        done = runs.get(name)
        assert phase_of(done) == "Succeeded", (name, done["status"].get("message"))
        session = done["status"]["checkpoint"]["session"]
        assert session["intents"] == {}
        filled += runs.check_books(name, session)
    print(f"chaos: {filled} orders filled")
    assert filled >= 30, "the runs traded enough for the kills to land among orders"

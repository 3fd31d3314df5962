"""Live runs against the simulator through the real ccxt client: the key checks and the approval gate."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.integration.example_runs import started
from tests.integration.live_operator import TRAIDING, check_books
from tests.integration.test_traiding_run import read_events, run_cli, write_manifest
from traiding.pipeline.crash_points import CRASH_AT_ENV
from traiding_simulator import ApiKeyConfig, DataSource, SimulatorConfig, ThreadedSimulator

KEY, SECRET = "live-key-1", "live-secret-1"


def start(shared_data: Path, **key_fields: bool) -> ThreadedSimulator:
    config = SimulatorConfig(
        data=[DataSource(path=shared_data / "ETH_USDT-5m.json")],
        speed=3000,
        log_requests=False,
        keys=[ApiKeyConfig(key=KEY, secret=SecretStr(SECRET), **key_fields)],
        initial_balances={"USDT": Decimal(20_000), "BNB": Decimal(0)},
    )
    return started(config)


@pytest.fixture
def live_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIDING_API_KEY", KEY)
    monkeypatch.setenv("TRAIDING_API_SECRET", SECRET)


@pytest.fixture
def simulator(shared_data: Path) -> Iterator[ThreadedSimulator]:
    sim = start(shared_data)
    yield sim
    sim.stop()


LIVE = {"mode": "live", "exchange.credentialsSecretRef": {"name": "binance-keys"}}


def test_a_live_run_waits_for_approval_then_places_each_order_once(
    tmp_path: Path, simulator: ThreadedSimulator, live_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, **LIVE, **{"session.duration": "1d"})
    output = tmp_path / "out"
    assert run_cli(manifest, output) == 3
    assert "live runs need an explicit approval" in capsys.readouterr().err
    waiting = json.loads((output / "status.json").read_text())
    assert waiting["phase"] == "AwaitingApproval"
    assert waiting["phases"]["ApiCheck"]["results"]["permissions"]["canWithdraw"] is False
    assert simulator.stats()["orders_total"] == 0  # nothing is traded before the approval

    assert run_cli(manifest, output, "--resume", "--approve-live") == 0
    status = json.loads((output / "status.json").read_text())
    assert status["phase"] == "Succeeded"
    assert status["approval"]["approvedBy"] == getpass.getuser()
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Approved"]["status"] == "True" and getpass.getuser() in conditions["Approved"]["message"]

    fills = [e["metrics"] for e in read_events(output) if e["type"] == "OrderFilled"]
    assert fills, "a day of 5m candles gives the 10/30 crossover something to trade"
    stats = simulator.stats()
    # Real orders on the (simulated) exchange, each client order id exactly once: the entries and exits, and
    # the protective stops of the positions (stopLossPct 2), cancelled before each exit unless they filled.
    assert set(stats["orders_by_client_order_id"].values()) == {1}
    orders = {o["clientOrderId"]: o for o in simulator.orders()}
    filled = {coid for coid, o in orders.items() if o["status"] == "FILLED"}
    assert filled == {f["client_order_id"] for f in fills}
    assert {o["status"] for coid, o in orders.items() if coid not in filled} <= {"CANCELED"}
    assert {o["type"] for coid, o in orders.items() if coid not in filled} <= {"STOP_LOSS_LIMIT"}
    booked = status["checkpoint"]["session"]["orders"]
    for coid in filled:  # the run's books hold what the exchange executed, to the cent
        assert booked[coid]["filled"] == pytest.approx(float(orders[coid]["executedQty"]), abs=1e-12)
        assert booked[coid]["cost"] == pytest.approx(float(orders[coid]["cummulativeQuoteQty"]), abs=0.01)
    # The run's own books agree with the exchange account: USDT moved by the run's cash, and what is left of
    # ETH is the dust below one lot step that the commissions in ETH left (worth cents, in the run's equity).
    session = status["checkpoint"]["session"]
    balances = simulator.balances()
    assert float(balances["USDT"][0]) == pytest.approx(20_000 + session["cash"] - 10_000, abs=0.01)
    assert float(balances["ETH"][0] + balances["ETH"][1]) == pytest.approx(
        session["dust"].get("ETH/USDT", 0.0), abs=1e-9
    )
    summary = json.loads((output / "summary.json").read_text())
    dust_value = session["dust"].get("ETH/USDT", 0.0) * session["last_prices"]["ETH/USDT"]
    assert summary["pnl"] == pytest.approx(session["cash"] - 10_000 + dust_value, abs=0.01)
    assert SECRET not in (output / "events.jsonl").read_text() + (output / "status.json").read_text()


def test_a_key_that_can_withdraw_is_refused(tmp_path: Path, shared_data: Path, live_env: None) -> None:
    sim = start(shared_data, can_withdraw=True)
    try:
        output = tmp_path / "out"
        assert run_cli(write_manifest(tmp_path, **LIVE), output) == 1
        status = json.loads((output / "status.json").read_text())
        assert (status["phases"]["ApiCheck"]["state"], status["reason"]) == ("Failed", "KeyCanWithdraw")
        assert "without withdrawal permission" in status["message"]
    finally:
        sim.stop()


def test_a_key_that_cannot_trade_is_refused(tmp_path: Path, shared_data: Path, live_env: None) -> None:
    sim = start(shared_data, can_trade=False)
    try:
        output = tmp_path / "out"
        assert run_cli(write_manifest(tmp_path, **LIVE), output) == 1
        assert json.loads((output / "status.json").read_text())["reason"] == "KeyCannotTrade"
    finally:
        sim.stop()


def test_a_balance_below_the_capital_is_refused(tmp_path: Path, simulator: ThreadedSimulator, live_env: None) -> None:
    simulator.set_balances({"USDT": 500})
    output = tmp_path / "out"
    assert run_cli(write_manifest(tmp_path, **LIVE), output) == 1
    status = json.loads((output / "status.json").read_text())
    assert status["reason"] == "InsufficientBalance"
    assert "500.00 is below the run's capital 10000.00" in status["message"]


def test_a_wrong_secret_fails_the_api_check_naming_where_keys_come_from(
    tmp_path: Path, simulator: ThreadedSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIDING_API_KEY", KEY)
    monkeypatch.setenv("TRAIDING_API_SECRET", "not-the-secret")
    output = tmp_path / "out"
    assert run_cli(write_manifest(tmp_path, **LIVE), output) == 1
    status = json.loads((output / "status.json").read_text())
    assert status["phases"]["ApiCheck"]["state"] == "Failed"
    assert "API key rejected by binance" in status["message"]
    assert "not-the-secret" not in (output / "events.jsonl").read_text() + json.dumps(status)


def test_a_skewed_clock_fails_the_api_check_with_what_to_do(tmp_path: Path, simulator: ThreadedSimulator) -> None:
    simulator.set_clock(time_offset_ms=5_000)  # the exchange is 5 s ahead of us
    output = tmp_path / "out"
    assert run_cli(write_manifest(tmp_path), output) == 1
    status = json.loads((output / "status.json").read_text())
    assert status["reason"] == "ClockSkew"
    assert "behind binance (allowed: 1000 ms)" in status["message"] and "NTP" in status["message"]


def test_killed_between_an_order_and_its_status_write_traiding_run_resumes_and_books_it_once(
    tmp_path: Path, shared_data: Path
) -> None:
    config = SimulatorConfig(
        data=[DataSource(path=shared_data / "ETH_USDT-5m.json")],
        speed=3000,
        log_requests=False,
        keys=[ApiKeyConfig(key=KEY, secret=SecretStr(SECRET))],
        initial_balances={"USDT": Decimal(20_000), "BNB": Decimal(0)},
        duplicate_client_order_id="open",  # as Binance: a second send of a filled order's id would execute
    )
    sim = started(config)
    try:
        manifest = write_manifest(tmp_path, **LIVE, **{"session.duration": "1d"})
        output = tmp_path / "out"
        command = [TRAIDING, "run", str(manifest), "-o", str(output), "--cache", str(tmp_path / "cache"), "-q"]
        env = {**os.environ, "TRAIDING_API_KEY": KEY, "TRAIDING_API_SECRET": SECRET}
        gate = subprocess.run(command, env=env, capture_output=True, check=False)  # every gate, then the approval
        assert gate.returncode == 3, gate.stderr.decode()[-2000:]
        crashing = {**env, CRASH_AT_ENV: "after-send:1"}  # dies right after its first order's send returns
        first = subprocess.run([*command, "--resume", "--approve-live"], env=crashing, capture_output=True, check=False)
        assert first.returncode == -9, first.stderr.decode()[-2000:]
        status = json.loads((output / "status.json").read_text())
        [sent] = status["checkpoint"]["session"]["intents"]  # written before the send, never resolved
        assert sim.stats()["orders_by_client_order_id"] == {sent: 1}
        again = subprocess.run([*command, "--resume", "--approve-live"], env=env, capture_output=True, check=False)
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        status = json.loads((output / "status.json").read_text())
        session = status["checkpoint"]["session"]
        assert status["phase"] == "Succeeded"
        assert sent in session["orders"] and session["intents"] == {}
        assert set(sim.stats()["orders_by_client_order_id"].values()) == {1}
        assert check_books(sim, "main", session) >= 2
        assert "OrderRecovered" in [e["type"] for e in read_events(output)]
    finally:
        sim.stop()

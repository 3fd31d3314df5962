"""`traiding run` end to end: the real ccxt client against the exchange simulator, every phase in one process."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.example_runs import example_run, started
from traiding.cli import main
from traiding_simulator import DataSource, SimulatorConfig, ThreadedSimulator

REPO = Path(__file__).resolve().parents[2]
EVENT_KEYS = {"time", "run", "phase", "type", "level", "message", "metrics"}
SUMMARY_KEYS = {"equity", "pnl", "roi_pct", "trades", "wins", "losses", "max_drawdown_pct", "sharpe"}


@pytest.fixture
def simulator(shared_data: Path) -> Iterator[ThreadedSimulator]:
    config = SimulatorConfig(data=[DataSource(path=shared_data / "ETH_USDT-5m.json")], speed=3000, log_requests=False)
    sim = started(config)
    try:
        yield sim
    finally:
        sim.stop()


def write_manifest(tmp_path: Path, **overrides: Any) -> Path:
    """The example against the test's simulator (see example_runs.started)."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(example_run(**overrides)))
    return path


def run_cli(manifest: Path, output: Path, *extra: str) -> int:
    return main(["run", str(manifest), "--output", str(output), "--cache", str(output.parent / "cache"), *extra])


def read_events(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (output / "events.jsonl").read_text().splitlines()]


def test_a_dry_run_passes_every_phase_and_writes_its_outputs(tmp_path: Path, simulator: ThreadedSimulator) -> None:
    output = tmp_path / "out"
    assert run_cli(write_manifest(tmp_path), output) == 0

    status = json.loads((output / "status.json").read_text())
    assert status["phase"] == "Succeeded"
    assert [name for name, rec in status["phases"].items() if rec["state"] == "Passed"] == [
        "DataCheck",
        "Backtest",
        "ApiCheck",
        "Trading",
        "Reporting",
    ]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "DataChecked": "True",
        "Backtested": "True",
        "ApiChecked": "True",
        "Traded": "True",
        "Ready": "True",
    }

    events = read_events(output)
    assert all(set(e) == EVENT_KEYS for e in events)
    assert {e["run"] for e in events} == {"eth-sma-dry"}
    transitions = [e["message"].split(":")[0] for e in events if e["type"] == "PhaseChanged"]
    assert transitions == [
        "Pending -> DataCheck",
        "DataCheck -> Backtest",
        "Backtest -> ApiCheck",
        "ApiCheck -> Trading",
        "Trading -> Reporting",
        "Reporting -> Succeeded",
    ]

    summary = json.loads((output / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    assert summary["equity"] == pytest.approx(10_000 + summary["pnl"])
    assert summary["roi_pct"] == pytest.approx(summary["pnl"] / 100)
    fills = [e for e in events if e["type"] == "OrderFilled"]
    # Every position opened in the session is closed by its end, so fills pair up into trades.
    assert len(fills) == 2 * summary["trades"]
    assert summary["wins"] + summary["losses"] <= summary["trades"]
    ids = [f["metrics"]["client_order_id"] for f in fills]
    assert len(set(ids)) == len(ids)

    report = (output / "report.html").read_text()
    assert report.count("<svg") >= 6  # session and backtest: price with trades, equity, drawdown
    assert "Succeeded" in report


def test_the_run_stops_at_the_first_failed_gate_and_says_why(
    tmp_path: Path, simulator: ThreadedSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    manifest = write_manifest(tmp_path, **{"gates.backtest.minSharpe": 50})
    assert run_cli(manifest, output) == 1
    err = capsys.readouterr().err
    assert "Failed in Backtest: BacktestGateFailed" in err
    assert "below the minimum 50" in err
    status = json.loads((output / "status.json").read_text())
    assert list(status["phases"]) == ["DataCheck", "Backtest"]  # nothing after the failed gate ran
    assert status["phases"]["Backtest"]["state"] == "Failed"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"
    assert not any(e["type"] == "OrderFilled" for e in read_events(output))


def test_a_dry_run_succeeds_with_ten_percent_of_requests_failing(tmp_path: Path, simulator: ThreadedSimulator) -> None:
    simulator.set_faults(error_rate=0.1, seed=11)
    output = tmp_path / "out"
    assert run_cli(write_manifest(tmp_path), output) == 0
    stats = simulator.stats()
    assert sum(stats["faults_injected"].values()) > 0
    assert stats["responses_by_status"].get("503", stats["responses_by_status"].get(503, 0)) > 0


def test_a_sustained_outage_fails_the_run_with_the_reason(
    tmp_path: Path, simulator: ThreadedSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.set_faults(maintenance=True)
    output = tmp_path / "out"
    assert run_cli(write_manifest(tmp_path), output) == 1
    err = capsys.readouterr().err
    assert "Failed in DataCheck" in err
    assert "maintenance" in err
    status = json.loads((output / "status.json").read_text())
    # Repeated failures open the circuit breaker, which fails the phase naming the last error.
    assert "circuit is open" in status["message"]
    assert status["reason"] == "CircuitOpen"


def test_the_kill_switch_ends_the_session_flat_and_reports(tmp_path: Path, simulator: ThreadedSimulator) -> None:
    output = tmp_path / "out"
    manifest = write_manifest(tmp_path, **{"risk.maxDrawdownPct": 0.01, "session.duration": "1d"})
    assert run_cli(manifest, output) == 0
    events = read_events(output)
    kill = [e for e in events if e["type"] == "KillSwitch"]
    assert len(kill) == 1 and "kill switch: drawdown" in kill[0]["message"]
    status = json.loads((output / "status.json").read_text())
    assert status["phase"] == "Succeeded"
    assert status["phases"]["Trading"]["message"].startswith("kill switch")
    positions = status["checkpoint"]["session"]["positions"]
    assert all(p["amount"] == 0 for p in positions.values())


def test_a_killed_run_resumes_where_it_was(tmp_path: Path, simulator: ThreadedSimulator) -> None:
    manifest = write_manifest(tmp_path, **{"session.duration": "1d"})
    output = tmp_path / "out"
    command = [str(REPO / ".venv" / "bin" / "traiding"), "run", str(manifest), "--output", str(output), "--quiet"]
    process = subprocess.Popen([*command, "--cache", str(tmp_path / "cache")], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = json.loads((output / "status.json").read_text()) if (output / "status.json").exists() else {}
            if len(status.get("checkpoint", {}).get("session", {}).get("equity", [])) >= 20:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run never got into its trading session")
    finally:
        process.send_signal(signal.SIGKILL)  # no chance to clean up: what a crashed operator looks like
        process.wait()
    killed = json.loads((output / "status.json").read_text())
    assert killed["phase"] == "Trading"
    # The report was written as the run went, and a browser showing it keeps reloading it while it is unfinished.
    live = (output / "report.html").read_text()
    assert 'http-equiv="refresh"' in live and "In progress: Trading" in live and '<table class="gates">' in live

    assert run_cli(manifest, output, "--resume") == 0
    events = read_events(output)
    assert [e["type"] for e in events].count("SessionStarted") == 1  # continued, not started again
    ids = [e["metrics"]["client_order_id"] for e in events if e["type"] == "OrderFilled"]
    assert len(ids) == len(set(ids))
    status = json.loads((output / "status.json").read_text())
    assert status["phase"] == "Succeeded"
    assert "http-equiv" not in (output / "report.html").read_text()  # the final write stops the reloading
    assert status["checkpoint"]["session"]["started_ms"] == killed["checkpoint"]["session"]["started_ms"]
    # The paper account came back with the run: the realised equity is the account's, not a fresh 10 000.
    paper = status["checkpoint"]["session"]["paper"]
    assert paper["free"]["USDT"] == pytest.approx(json.loads((output / "summary.json").read_text())["equity"])

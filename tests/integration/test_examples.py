"""Every manifest in examples/ runs as it is written and ends in the phase its first comment promises.

The first line of each example reads `# Ends in: Succeeded.` or `# Ends in: Failed in Backtest.`; this test
parses that promise and holds the example to it, so a comment cannot drift from what the example does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from traiding.cli import main

REPO = Path(__file__).resolve().parents[2]
# The TradingRun examples; examples/monitoring/ holds configuration for other tools (Alertmanager).
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
PROMISE = re.compile(r"^# Ends in: (?P<phase>Succeeded|Failed|Cancelled|AwaitingApproval)(?: in (?P<stopped>\w+))?\.")
EXIT_CODES = {"Succeeded": 0, "Failed": 1, "Cancelled": 1, "AwaitingApproval": 3}


def promise_of(example: Path) -> tuple[str, str | None]:
    first = example.read_text().splitlines()[0]
    match = PROMISE.match(first)
    assert match, f"{example.name}: the first line must say which phase it ends in ('# Ends in: ...'), got {first!r}"
    return match["phase"], match["stopped"]


def test_there_are_examples_of_a_run_that_succeeds_and_of_one_that_stops_at_its_backtest_gate() -> None:
    promises = {promise_of(example) for example in EXAMPLES}
    assert ("Succeeded", None) in promises
    assert ("Failed", "Backtest") in promises


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_an_example_ends_in_the_phase_its_comment_promises(example: Path, tmp_path: Path) -> None:
    phase, stopped_in = promise_of(example)
    document = yaml.safe_load(example.read_text())
    simulator = document["spec"]["exchange"]["simulator"]
    assert "shared" not in str(simulator.get("data", "")), "a user's clone has no ../shared"

    output = tmp_path / "out"
    code = main(["run", str(example), "--output", str(output), "--cache", str(tmp_path / "cache"), "--quiet"])

    status = json.loads((output / "status.json").read_text())
    assert (status["phase"], code) == (phase, EXIT_CODES[phase]), status.get("message")
    if stopped_in is not None:
        assert status["phases"][stopped_in]["state"] == "Failed"
        assert list(status["phases"])[-1] == stopped_in  # nothing ran after the phase that stopped it
    # The replay held at the pinned start: the backtest's lookback ends exactly there (in market time, the data's
    # dates moved by whole days onto today's).
    start_ms = int(datetime.fromisoformat(simulator["start"]).timestamp() * 1000)
    replay = status["checkpoint"]["replay"]
    assert replay["startMs"] == start_ms
    assert status["checkpoint"]["history"]["end_ms"] == start_ms + replay["shiftDays"] * 86_400_000
    assert (output / "summary.json").exists()
    # the report shows the data's own dates, and the replay's beside them
    report = (output / "report.html").read_text()
    assert f"to {simulator['start'][:10]} 00:00 UTC in the data, replayed" in report


def measured(example: str, *args: str) -> dict[str, tuple[int, int]]:
    """scripts/example_windows.py's counts: 'passed the gates: 138 of 139' -> {'passed the gates': (138, 139)}."""
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "example_windows.py"), str(REPO / "examples" / example), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    counts = re.findall(r"^  (.+?)(?: \d{4}-\S+)?: (\d+) of (\d+)$", done.stdout, re.MULTILINE)
    return {label.split(" of the pinned")[0]: (int(a), int(b)) for label, a, b in counts}


@pytest.mark.slow
def test_what_the_examples_comments_claim_about_their_windows_is_what_the_script_measures() -> None:
    comment = " ".join(line.lstrip("# ") for line in (REPO / "examples" / "dry-run.yaml").read_text().splitlines())
    eth = measured("dry-run.yaml")
    passed, total = eth["passed the gates"]
    near, near_total = eth["within 14 days"]
    beat, _ = eth["returned more than buy and hold"]
    assert f"pass on {passed} of the {total} 90-day windows" in comment
    assert near == near_total and f"all {near} within two weeks of this start" in comment
    assert f"buy and hold returned more in {total - beat} of those {total}" in comment
    btc_passed, _ = measured("dry-run.yaml", "--symbol", "BTC/USDT")["passed the gates"]
    assert f"the same settings pass {btc_passed} of {total}" in comment

    stop = " ".join(
        line.lstrip("# ") for line in (REPO / "examples" / "backtest-gate-stop.yaml").read_text().splitlines()
    )
    near_passed, near_total = measured("backtest-gate-stop.yaml", "--symbol", "BTC/USDT")["within 14 days"]
    assert near_passed == 0 and f"fail on all {near_total} windows within two weeks" in stop

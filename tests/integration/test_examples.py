"""Every manifest in examples/ runs as it is written and ends in the phase its first comment promises.

The first line of each example reads `# Ends in: Succeeded.` or `# Ends in: Failed in Backtest.`; this test
parses that promise and holds the example to it, so a comment cannot drift from what the example does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from traiding.cli import main

REPO = Path(__file__).resolve().parents[2]
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
    # The replay held at the pinned start: the backtest's lookback ends exactly there.
    start_ms = int(simulator["start"].timestamp() * 1000)
    assert status["checkpoint"]["history"]["end_ms"] == start_ms
    assert (output / "report.html").exists() and (output / "summary.json").exists()

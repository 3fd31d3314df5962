"""The example manifest made fast and busy for tests: against the test's simulator at 3000x, with dotted-path
overrides.

These tests are about the pipeline (phases, orders, restarts, the kill switch), not about a strategy's edge, so
the run trades often (a 10/30 crossover: several trades a day of 5m candles) and its backtest gate asks only for
trades. The examples themselves run unmodified in test_examples.py.

A run names its simulator, never its address: `started(config)` starts the test's simulator and allows it in
this process's environment as `TEST_SIMULATOR` (TRAIDING_SIMULATORS, as an installation's allowlist would), so
`traiding run` and every operator started after it, in this process or as a subprocess, find it by that name.
tests/conftest.py takes the setting away again after each test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import yaml

from traiding_simulator import SimulatorConfig, ThreadedSimulator

REPO = Path(__file__).resolve().parents[2]
SIMULATORS_ENV = "TRAIDING_SIMULATORS"
TEST_SIMULATOR = "test"


def allow_simulator(url: str, name: str = TEST_SIMULATOR) -> None:
    """Allow the simulator at `url` under `name` (beside the ones allowed already in this test)."""
    allowed = json.loads(os.environ.get(SIMULATORS_ENV) or "{}")
    os.environ[SIMULATORS_ENV] = json.dumps({**allowed, name: url})


def started(config: SimulatorConfig) -> ThreadedSimulator:
    """A simulator on a free loopback port, allowed as `TEST_SIMULATOR`."""
    sim = ThreadedSimulator(config).start()
    allow_simulator(sim.base_url)
    return sim


def example_run(**overrides: Any) -> dict[str, Any]:
    """examples/dry-run.yaml against the test's simulator, 6h session; overrides like `{"risk.stopLossPct": 1}`."""
    document = cast(dict[str, Any], yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text()))
    spec = document["spec"]
    spec["exchange"]["simulator"] = {"name": TEST_SIMULATOR, "speed": 3000}
    spec["session"] = {"duration": "6h"}
    spec["strategy"]["params"] = {"fast": 10, "slow": 30}
    spec["gates"]["dataCheck"]["lookback"] = "30d"
    spec["gates"]["backtest"] = {"minTrades": 20, "minSharpe": None, "maxDrawdownPct": None}
    for dotted, value in overrides.items():
        node = spec
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return document

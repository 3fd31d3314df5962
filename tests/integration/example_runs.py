"""The example manifest made fast and busy for tests: against a given simulator at 3000x, with dotted-path overrides.

These tests are about the pipeline (phases, orders, restarts, the kill switch), not about a strategy's edge, so
the run trades often (a 10/30 crossover: several trades a day of 5m candles) and its backtest gate asks only for
trades. The examples themselves run unmodified in test_examples.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import yaml

REPO = Path(__file__).resolve().parents[2]


def example_run(simulator_url: str, **overrides: Any) -> dict[str, Any]:
    """examples/dry-run.yaml against `simulator_url`, 6h session; overrides like `{"risk.stopLossPct": 1}`."""
    document = cast(dict[str, Any], yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text()))
    spec = document["spec"]
    spec["exchange"]["simulator"] = {"url": simulator_url, "speed": 3000}
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

"""report.html of real `traiding run`s on the bundled candles, read back as tables: a run that failed its backtest
gate (for one of two pairs) and a two-pair run that traded. The tables must hold every row the run produced."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from traiding.cli import main

REPO = Path(__file__).resolve().parents[2]


class Tables(HTMLParser):
    """The body rows of every <table>, as cell texts, under the table's class; and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[list[str]]]] = {}
        self._rows: list[list[str]] | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_body = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows = []
            self.tables.setdefault(dict(attrs).get("class") or "", []).append(self._rows)
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._rows is not None:
            self._rows.append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def run_example(tmp_path: Path, **changes: Any) -> tuple[int, dict[str, Any], Tables]:
    """examples/dry-run.yaml on BTC/USDT and ETH/USDT, with `changes` to its spec; the exit code, status, report."""
    document = yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text())
    document["spec"]["market"]["symbols"] = ["BTC/USDT", "ETH/USDT"]
    for dotted, value in changes.items():
        node = document["spec"]
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    manifest = tmp_path / "run.yaml"
    manifest.write_text(yaml.safe_dump(document))
    output = tmp_path / "out"
    code = main(["run", str(manifest), "-o", str(output), "--cache", str(tmp_path / "cache"), "--quiet"])
    tables = Tables()
    tables.feed((output / "report.html").read_text())
    return code, json.loads((output / "status.json").read_text()), tables


def test_a_failed_runs_report_shows_its_metrics_every_gate_and_the_trades(tmp_path: Path) -> None:
    # 90 days to 2021-05-29: ETH rose and passes; BTC fell after April and fails its Sharpe gate.
    code, status, report = run_example(tmp_path)
    assert code == 1 and status["phase"] == "Failed"
    results = status["phases"]["Backtest"]["results"]

    [gates] = report.tables["gates"]
    assert len(gates) == 6  # three gates for each of the two pairs, not blank rows
    by_gate = {(row[0], row[1]): row for row in gates}
    sharpe = results["BTC/USDT"]["metrics"]["sharpe"]
    assert by_gate[("BTC/USDT", "minSharpe")][2:6] == ["at least 0.50", f"{sharpe:.2f}", "fail", f"-{0.5 - sharpe:.2f}"]
    assert [by_gate[("ETH/USDT", g)][4] for g in ("minTrades", "minSharpe", "maxDrawdownPct")] == ["pass"] * 3

    [pairs] = report.tables["pairs"]
    assert [row[0] for row in pairs] == ["BTC/USDT", "ETH/USDT"]
    for row in pairs:
        metrics = results[row[0]]["metrics"]
        assert row[2] == str(int(metrics["trades"]))
        assert row[4] == f"{metrics['market_change_pct']:+.2f}%"  # buy and hold beside the return
    assert [row[-1] for row in pairs] == ["2 of 3", "3 of 3"]

    trade_tables = report.tables["trades"]
    assert [len(rows) for rows in trade_tables] == [int(results[s]["metrics"]["trades"]) for s in results]
    first = trade_tables[0][0]
    assert len(first) == 7 and first[-1] in {"signal", "stop loss", "end of data"}
    assert "Failed in Backtest" in "".join(report.text)
    assert "Trading session" not in "".join(report.text)  # nothing traded, nothing pretended


@pytest.mark.slow
def test_a_two_pair_runs_report_has_a_row_per_pair_and_per_trade(tmp_path: Path) -> None:
    # 90 days to 2021-03-20 pass for both pairs; the 12 hours after it hold an entry on each.
    code, status, report = run_example(
        tmp_path, **{"exchange.simulator.start": "2021-03-20T00:00:00Z", "session.duration": "12h"}
    )
    assert code == 0 and status["phase"] == "Succeeded"
    session = status["checkpoint"]["session"]
    summary = status["summary"]

    session_pairs, backtest_pairs = report.tables["pairs"]
    assert [row[0] for row in session_pairs] == [row[0] for row in backtest_pairs] == ["BTC/USDT", "ETH/USDT"]
    assert sum(int(row[1]) for row in session_pairs) == summary["trades"] > 0
    [gates] = report.tables["gates"]
    assert len(gates) == 6 and {row[4] for row in gates} == {"pass"}

    session_trades = report.tables["trades"][0]
    assert len(session_trades) == len(session["trades"]) == summary["trades"]
    assert {row[0] for row in session_trades} <= {"BTC/USDT", "ETH/USDT"}
    assert all(row[-1] in {"signal", "stop loss", "session end"} for row in session_trades)
    text = "".join(report.text)
    assert "Market change (buy and hold, same candles)" in text
    assert "not meaningful over 12h" in text  # a 12-hour session's Sharpe is not annualised into a fantasy


def test_a_warm_up_longer_than_the_lookback_stops_the_backtest_saying_so(tmp_path: Path) -> None:
    # 12 hours of 5m candles are 144; the 50/200 crossover needs 200 before its first signal.
    code, status, _ = run_example(tmp_path, **{"gates.dataCheck.lookback": "12h"})
    assert code == 1 and status["reason"] == "WarmupLongerThanData"
    assert status["message"].startswith("BTC/USDT: the strategy's warm-up needs 200 candles before its first signal")
    assert "the lookback (12h of 5m) holds 144: lengthen gates.dataCheck.lookback" in status["message"]

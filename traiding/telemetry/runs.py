"""What is known about each run, as gauges: runs by phase, stopped runs with open positions, ROI and PnL.

The operator feeds `RunBook` from the watch stream (every TradingRun it serves, finished ones included, so
the counts are the cluster's and survive an operator restart); `traiding run` feeds it its one run after
every step. Facts come from the TradingRun's JSON (metadata labels, spec, status), the shape both share.

The per-run ROI/PnL gauges carry the run's name, the one unbounded label in the product. They exist only
while a run is unfinished (its series go when it finishes or is deleted), and at most `MAX_RUN_SERIES`
runs are exported, so the series count stays bounded by the runs trading at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from traiding.domain.statemachine import TERMINAL, Phase

NIGHTLY_LABEL = "traiding.io/nightly"  # the Helm chart's CronJob sets it on the runs it submits
MAX_RUN_SERIES = 100
FINAL_PHASES = frozenset(phase.value for phase in TERMINAL)

RunKey = tuple[str, str]  # (namespace, name); locally ("", name)


@dataclass(frozen=True)
class RunFacts:
    phase: str
    mode: str
    trigger: str
    open_positions: int  # positions the session holds (or left open when it stopped)
    currency: str
    pnl: float | None  # while trading: equity minus the initial capital
    roi_pct: float | None


def trigger_of(labels: Mapping[str, str] | None) -> str:
    return "nightly" if (labels or {}).get(NIGHTLY_LABEL) == "true" else "manual"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def facts_of(run: Mapping[str, Any]) -> RunFacts:
    """The facts of a TradingRun given as JSON (`metadata`, `spec`, `status`); missing parts have defaults."""
    status = run.get("status") or {}
    # The spec the run started with (frozen in the checkpoint) is the one it runs on.
    spec = (status.get("checkpoint") or {}).get("spec") or run.get("spec") or {}
    capital = spec.get("capital") or {}
    initial = _number(capital.get("initial"))
    trading = ((status.get("phases") or {}).get(Phase.TRADING.value) or {}).get("results") or {}
    summary = status.get("summary") or {}
    phase = str(status.get("phase") or Phase.PENDING.value)
    pnl = roi = None
    equity = _number(trading.get("equity"))
    if _number(summary.get("pnl")) is not None:
        pnl, roi = _number(summary.get("pnl")), _number(summary.get("roiPct"))
    elif equity is not None and initial:
        pnl = equity - initial
        roi = pnl / initial * 100
    return RunFacts(
        phase=phase,
        mode=str(spec.get("mode") or "dry-run"),
        trigger=trigger_of((run.get("metadata") or {}).get("labels")),
        open_positions=int(_number(trading.get("openPositions")) or 0),
        currency=str(capital.get("currency") or ""),
        pnl=pnl,
        roi_pct=roi,
    )


class RunBook(Collector):
    """The runs this process knows of, exported at scrape time (see module doc)."""

    def __init__(self, modes: tuple[str, ...], triggers: tuple[str, ...]) -> None:
        self._modes = modes
        self._triggers = triggers
        self._runs: dict[RunKey, RunFacts] = {}
        self._lock = Lock()

    def observe(self, key: RunKey, facts: RunFacts) -> None:
        with self._lock:
            self._runs[key] = facts

    def forget(self, key: RunKey) -> None:
        with self._lock:
            self._runs.pop(key, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            runs = sorted(self._runs.items())
        by_phase = GaugeMetricFamily(
            "traiding_runs", "TradingRuns by phase, mode and trigger.", labels=["phase", "mode", "trigger"]
        )
        counts: dict[tuple[str, str, str], int] = {
            (phase.value, mode, trigger): 0 for phase in Phase for mode in self._modes for trigger in self._triggers
        }
        stranded = GaugeMetricFamily(
            "traiding_runs_stopped_with_open_positions",
            "Finished runs whose trading session could not close its positions.",
            labels=["mode", "trigger"],
        )
        stranded_counts = {(mode, trigger): 0 for mode in self._modes for trigger in self._triggers}
        roi = GaugeMetricFamily(
            "traiding_run_roi_percent",
            "Return on the run's capital so far, while the run is unfinished.",
            labels=["run_namespace", "run", "mode"],
        )
        pnl = GaugeMetricFamily(
            "traiding_run_pnl",
            "Profit and loss so far in the capital currency, while the run is unfinished.",
            labels=["run_namespace", "run", "mode", "currency"],
        )
        exported = 0
        for (namespace, name), facts in runs:
            key = (facts.phase, facts.mode, facts.trigger)
            counts[key] = counts.get(key, 0) + 1
            if facts.phase in FINAL_PHASES:
                if facts.open_positions > 0:
                    group = (facts.mode, facts.trigger)
                    stranded_counts[group] = stranded_counts.get(group, 0) + 1
            elif facts.pnl is not None and exported < MAX_RUN_SERIES:
                exported += 1
                pnl.add_metric([namespace, name, facts.mode, facts.currency], facts.pnl)
                if facts.roi_pct is not None:
                    roi.add_metric([namespace, name, facts.mode], facts.roi_pct)
        for labels, count in sorted(counts.items()):
            by_phase.add_metric(list(labels), count)
        for group, count in sorted(stranded_counts.items()):
            stranded.add_metric(list(group), count)
        yield by_phase
        yield stranded
        yield roi
        yield pnl

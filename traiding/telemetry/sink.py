"""`RunMetricsSink`: counts what a run's event log says happened (phase changes, kill switches).

It is an ordinary event sink of `traiding.pipeline.events.EventLog`, so the pipeline reports into the
metrics without knowing them: the runner's `PhaseChanged` events carry `from`, `to` and `durationSeconds`
in their metrics, the session's `KillSwitch` events mark a tripped kill switch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from traiding.telemetry.metrics import Metrics


class EventLike(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, Any]: ...


class RunMetricsSink:
    def __init__(self, metrics: Metrics, *, mode: str, trigger: str) -> None:
        self.metrics = metrics
        self.mode = mode
        self.trigger = trigger

    def emit(self, event: EventLike) -> None:
        if event.type == "PhaseChanged" and "from" in event.metrics and "to" in event.metrics:
            seconds = event.metrics.get("durationSeconds")
            self.metrics.phase_changed(
                str(event.metrics["from"]),
                str(event.metrics["to"]),
                self.mode,
                self.trigger,
                float(seconds) if isinstance(seconds, int | float) else None,
            )
        elif event.type == "KillSwitch":
            self.metrics.kill_switch(self.mode, self.trigger)

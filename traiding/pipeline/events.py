"""The run's event log: one JSON object per line (time, run, phase, type, level, message, metrics).

`traiding run` writes it to `events.jsonl`; the operator mirrors the same events to Kubernetes
Events. Sinks only ever see messages built by the phase code, which never include secrets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Level = Literal["debug", "info", "warning", "error"]


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    time: datetime
    run: str
    phase: str
    type: str
    level: Level = "info"
    message: str
    metrics: dict[str, Any] = Field(default_factory=dict)


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


def json_safe(value: Any) -> Any:
    """NaN and infinities become None so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class EventLog:
    """Emits events to the sinks it was given, stamping run name and time."""

    def __init__(self, run: str, sinks: list[EventSink], clock: Callable[[], datetime] | None = None) -> None:
        self.run = run
        self.sinks = sinks
        self._clock = clock or (lambda: datetime.now(UTC))

    def emit(
        self,
        phase: str,
        type_: str,
        message: str,
        *,
        level: Level = "info",
        metrics: dict[str, Any] | None = None,
    ) -> Event:
        event = Event(
            time=self._clock(),
            run=self.run,
            phase=phase,
            type=type_,
            level=level,
            message=message,
            metrics=json_safe(metrics or {}),
        )
        for sink in self.sinks:
            sink.emit(event)
        return event


class JsonlSink:
    """Appends events to a file, flushing each line so a crash loses nothing already said."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")

    def emit(self, event: Event) -> None:
        self._file.write(json.dumps(event.model_dump(mode="json"), allow_nan=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class MemorySink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

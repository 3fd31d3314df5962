"""The trading session's closing prices per symbol, for the report: kept beside the run's status, not in it.

The session needs only each symbol's first and last price (the market change in the summary), which stay in the
checkpoint; the series itself is for the report's price charts. In the checkpoint it would travel with every
status write of every run (hundreds of points per symbol), so a driver that draws a report (`traiding run`)
hands the session a `PriceSeries` and keeps it in a file of its own; the operator, which draws none, hands none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_POINTS = 600  # points kept per series (equity and prices) for the report


def append_capped(points: list[Any], item: Any, cap: int) -> None:
    points.append(item)
    if len(points) > cap:
        del points[1::2]  # thin out evenly, keeping the first point; the curve keeps its shape


class PriceSeries:
    """[time_ms, close] points per symbol, thinned to `MAX_POINTS` as they grow."""

    def __init__(self, points: dict[str, list[list[float]]] | None = None) -> None:
        self.points: dict[str, list[list[float]]] = points or {}

    def add(self, symbol: str, time_ms: int, close: float) -> None:
        append_capped(self.points.setdefault(symbol, []), [time_ms, close], MAX_POINTS)

    def arrays(self) -> dict[str, npt.NDArray[np.float64]]:
        return {s: np.asarray(p, dtype=np.float64).reshape(-1, 2) for s, p in self.points.items()}

    @classmethod
    def load(cls, path: Path) -> PriceSeries:
        """The series saved at `path`, or an empty one when there is none (a run that has not traded yet)."""
        if not path.is_file():
            return cls()
        return cls({str(k): [[float(t), float(c)] for t, c in v] for k, v in json.loads(path.read_text()).items()})

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.points))
        tmp.replace(path)

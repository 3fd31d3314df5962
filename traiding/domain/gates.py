"""Generic pass/fail thresholds over named metrics, with messages a trader can act on.

A gate says "metric must be >= (or <=) threshold". `evaluate_gates` checks every gate (it does not stop at
the first failure, so one report lists everything to fix) and explains each result, e.g.
"sharpe 0.31 below the minimum 0.50 (short by 0.19)". A metric that exists but has no value (None: e.g. no
Sharpe ratio when equity never moved) fails its gate; a gate naming a metric the mapping does not have at
all is a configuration mistake and raises `UnknownMetricError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from traiding.errors import UserError

Comparison = Literal[">=", "<="]


class UnknownMetricError(UserError):
    """A gate refers to a metric that is not computed."""


class GateThreshold(BaseModel):
    """`metric` must be `comparison` `threshold`; `name` identifies the gate (e.g. the spec field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    comparison: Comparison
    threshold: float = Field(allow_inf_nan=False)


class GateResult(BaseModel):
    """One gate's outcome. `margin` is positive with room to spare, negative by how much it missed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    metric: str
    comparison: Comparison
    threshold: float
    actual: float | None
    margin: float | None
    passed: bool
    message: str


class GateReport(BaseModel):
    """All gates' outcomes; `passed` only when every gate passed (an empty set of gates passes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    passed: bool
    results: tuple[GateResult, ...]

    @property
    def failures(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def summary(self) -> str:
        """One line: what failed (each message), or that every gate passed."""
        if self.passed:
            return f"all {len(self.results)} gates passed"
        return "; ".join(r.message for r in self.failures)


def evaluate_gates(
    metrics: Mapping[str, float | None],
    thresholds: Iterable[GateThreshold],
    notes: Mapping[str, str] | None = None,
) -> GateReport:
    """Check each threshold against `metrics` (e.g. `BacktestMetrics.gate_values()`); `notes` say why a
    metric is None where that is known (`BacktestMetrics.notes()`), for the failure message."""
    results = tuple(_evaluate(metrics, gate, notes or {}) for gate in thresholds)
    return GateReport(passed=all(r.passed for r in results), results=results)


def _evaluate(metrics: Mapping[str, float | None], gate: GateThreshold, notes: Mapping[str, str]) -> GateResult:
    if gate.metric not in metrics:
        known = ", ".join(sorted(metrics)) or "(none)"
        raise UnknownMetricError(f"gate {gate.name!r} refers to unknown metric {gate.metric!r}; known: {known}")
    raw = metrics[gate.metric]
    actual = None if raw is None or not math.isfinite(float(raw)) else float(raw)
    bound = "minimum" if gate.comparison == ">=" else "maximum"
    limit = _fmt(gate.threshold)
    if actual is None:
        why = notes.get(gate.metric) or "not available (undefined for this run, e.g. no trades or no price movement)"
        return _result(
            gate,
            actual=None,
            margin=None,
            passed=False,
            message=f"{gate.metric} is {why}, so the {bound} {limit} cannot be met",
        )
    margin = actual - gate.threshold if gate.comparison == ">=" else gate.threshold - actual
    passed = margin >= 0
    value, gap = _fmt(actual), _fmt(abs(margin))
    if gate.comparison == ">=":
        message = (
            f"{gate.metric} {value} meets the minimum {limit} (by {gap})"
            if passed
            else f"{gate.metric} {value} below the minimum {limit} (short by {gap})"
        )
    else:
        message = (
            f"{gate.metric} {value} within the maximum {limit} (by {gap})"
            if passed
            else f"{gate.metric} {value} above the maximum {limit} (over by {gap})"
        )
    return _result(gate, actual=actual, margin=margin, passed=passed, message=message)


def _result(
    gate: GateThreshold, *, actual: float | None, margin: float | None, passed: bool, message: str
) -> GateResult:
    return GateResult(
        name=gate.name,
        metric=gate.metric,
        comparison=gate.comparison,
        threshold=gate.threshold,
        actual=actual,
        margin=margin,
        passed=passed,
        message=message,
    )


def _fmt(value: float) -> str:
    """Whole numbers without decimals (trades 12), others with two, tiny ones with three significant digits."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"

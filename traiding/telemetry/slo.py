"""The service level objectives as typed configuration (`traiding slo render --config FILE`).

Four SLOs, each over `window` (30 days by default):
- availability: the operator's scrape target is up (`up{job=...}`) 99.5% of the time;
- exchange latency: 95% of answered exchange requests take under 500 ms (p95 < 500 ms);
- trade execution: 99% of orders are filled within 1 s of being submitted (p99 < 1 s);
- error rate: under 1% of exchange requests fail (network errors, 5xx, timeouts, rate limiting).

A latency threshold must be a bucket boundary of its histogram: the SLI counts the requests in the bucket
`le=threshold`, so any other value could not be measured.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from traiding.errors import UserError
from traiding.telemetry.metrics import EXCHANGE_LATENCY_BUCKETS, ORDER_LATENCY_BUCKETS

# The windows every SLI is recorded over: the alerts' long and short windows and the SLO window.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
DEFAULT_RUNBOOK = "https://github.com/ai-traiding/ai-traiding/blob/main/docs/troubleshooting.md"


class ConfigModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _duration(value: str) -> str:
    if not DURATION.match(value):
        raise ValueError(f"{value!r} is not a Prometheus duration such as 5m, 1h, 30d")
    return value


class Objective(ConfigModel):
    objectivePct: float = Field(gt=0, lt=100, description="Share of good events (or time) the SLO promises.")

    @property
    def budget(self) -> float:
        """The error budget as a ratio (99.5% -> 0.005)."""
        return round(1 - self.objectivePct / 100, 10)


class LatencyObjective(Objective):
    thresholdSeconds: float = Field(gt=0, description="Events faster than this are good (a histogram bucket).")


class BurnRateAlert(ConfigModel):
    """Fire when the error budget burns `burnRate` times too fast over both windows (SRE workbook, ch. 5)."""

    severity: Literal["page", "ticket"]
    burnRate: float = Field(gt=0)
    longWindow: str
    shortWindow: str

    @field_validator("longWindow", "shortWindow")
    @classmethod
    def _recorded(cls, value: str) -> str:
        if value not in WINDOWS:
            raise ValueError(f"{value!r} is not a recorded window; use one of {', '.join(WINDOWS)}")
        return value


def _default_burn_rates() -> list[BurnRateAlert]:
    return [
        BurnRateAlert(severity="page", burnRate=14.4, longWindow="1h", shortWindow="5m"),  # 2% of budget in 1h
        BurnRateAlert(severity="page", burnRate=6, longWindow="6h", shortWindow="30m"),  # 5% in 6h
        BurnRateAlert(severity="ticket", burnRate=3, longWindow="1d", shortWindow="2h"),  # 10% in 1d
        BurnRateAlert(severity="ticket", burnRate=1, longWindow="3d", shortWindow="6h"),  # 10% in 3d
    ]


class SloConfig(ConfigModel):
    window: str = Field(default="30d", description="The SLO window (one of the recorded windows).")
    job: str = Field(default="ai-traiding-operator", description="Prometheus `job` label of the operator's target.")
    runbookUrl: str = Field(default=DEFAULT_RUNBOOK, description="docs/troubleshooting.md as your people read it.")
    availability: Objective = Field(default_factory=lambda: Objective(objectivePct=99.5))
    exchangeLatency: LatencyObjective = Field(
        default_factory=lambda: LatencyObjective(objectivePct=95, thresholdSeconds=0.5)
    )
    tradeExecution: LatencyObjective = Field(
        default_factory=lambda: LatencyObjective(objectivePct=99, thresholdSeconds=1.0)
    )
    errorRate: Objective = Field(default_factory=lambda: Objective(objectivePct=99))
    burnRates: list[BurnRateAlert] = Field(default_factory=_default_burn_rates, min_length=1)
    absentFor: str = Field(default="10m", description="How long the metrics may be missing before the alert fires.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value not in WINDOWS:
            raise ValueError(f"{value!r} is not a recorded window; use one of {', '.join(WINDOWS)}")
        return value

    @field_validator("absentFor")
    @classmethod
    def _absent_for(cls, value: str) -> str:
        return _duration(value)

    @model_validator(mode="after")
    def _thresholds_are_buckets(self) -> SloConfig:
        for field, buckets in (
            ("exchangeLatency", EXCHANGE_LATENCY_BUCKETS),
            ("tradeExecution", ORDER_LATENCY_BUCKETS),
        ):
            threshold = getattr(self, field).thresholdSeconds
            if threshold not in buckets:
                raise ValueError(
                    f"{field}.thresholdSeconds {threshold:g} is not a bucket boundary of its histogram "
                    f"(buckets: {', '.join(f'{b:g}' for b in buckets)})"
                )
        return self


def load_slo_config(path: Path | None) -> SloConfig:
    """The SLO configuration in `path` (YAML), or the defaults; a clear error naming the field otherwise."""
    if path is None:
        return SloConfig()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}") from None
    try:
        return SloConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in error.errors()
        )
        raise UserError(f"{path}: {problems}") from None

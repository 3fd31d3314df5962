"""The PrometheusRule for the SLOs and the runs: recording rules, burn-rate and run alerts.

Per SLO (label `slo`), for every window in `WINDOWS`:
- `slo:sli_error:ratio_rate<window>`: the share of bad events (or downtime) over the window;
- `slo:burn_rate:ratio_rate<window>`: that share over the error budget (1 = on budget);
and once: `slo:objective:ratio`, `slo:error_budget:ratio` and `slo:error_budget:remaining_ratio` (over the
SLO window; 1 = untouched, 0 = spent, negative = overspent).

Alerts: the multi-window multi-burn-rate alerts of Google's SRE workbook per SLO (`burnRates`), an
absent-data alert, a failed nightly run (ticket), and a live run that stopped with positions open or
tripped its kill switch (pages). Every alert has a summary, a description and a runbook link.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import yaml

from traiding.telemetry.metrics import EXCHANGE_LATENCY, ORDER_LATENCY
from traiding.telemetry.slo import WINDOWS, BurnRateAlert, LatencyObjective, Objective, SloConfig

API_VERSION = "monitoring.coreos.com/v1"
RULE_NAME = "ai-traiding"


@dataclass(frozen=True)
class Sli(ABC):
    slo: str  # the `slo` label
    title: str  # for people: "Availability"
    alert: str  # alert name prefix
    anchor: str  # section of docs/troubleshooting.md
    objective: Objective
    what: str  # what a bad event is, for descriptions

    @abstractmethod
    def error_ratio(self, config: SloConfig, window: str) -> str:
        """PromQL for the share of bad events (or downtime) over `window`."""


def _job(config: SloConfig) -> str:
    return f'job="{config.job}"'


class AvailabilitySli(Sli):
    def error_ratio(self, config: SloConfig, window: str) -> str:
        return f"1 - avg(avg_over_time(up{{{_job(config)}}}[{window}]))"


@dataclass(frozen=True)
class LatencySli(Sli):
    metric: str = ""
    selector: str = ""

    def error_ratio(self, config: SloConfig, window: str) -> str:
        assert isinstance(self.objective, LatencyObjective)  # nosec B101  # narrows a type; not an input check
        le = repr(float(self.objective.thresholdSeconds))  # as prometheus_client writes bucket bounds: 0.5, 1.0
        labels = f"{_job(config)},{self.selector}"
        return (
            f'1 - (sum(rate({self.metric}_bucket{{{labels},le="{le}"}}[{window}]))'
            f" / sum(rate({self.metric}_count{{{labels}}}[{window}])))"
        )


class ErrorRateSli(Sli):
    def error_ratio(self, config: SloConfig, window: str) -> str:
        # `or vector(0)`: no failed request at all is a ratio of 0, not a missing SLI.
        return (
            f'(sum(rate({EXCHANGE_LATENCY}_count{{{_job(config)},outcome=~"error|rate_limited"}}[{window}]))'
            f" or vector(0)) / sum(rate({EXCHANGE_LATENCY}_count{{{_job(config)}}}[{window}]))"
        )


def slis(config: SloConfig) -> list[Sli]:
    return [
        AvailabilitySli(
            "availability",
            "Availability",
            "TraidingAvailability",
            "availability-budget-burn",
            config.availability,
            "time the operator's metrics endpoint was down",
        ),
        LatencySli(
            "exchange-latency",
            "Exchange API latency",
            "TraidingExchangeLatency",
            "exchange-latency-budget-burn",
            config.exchangeLatency,
            f"answered exchange requests slower than {config.exchangeLatency.thresholdSeconds:g} s",
            metric=EXCHANGE_LATENCY,
            selector='outcome=~"ok|rejected"',
        ),
        LatencySli(
            "trade-execution",
            "Trade execution",
            "TraidingTradeExecution",
            "trade-execution-budget-burn",
            config.tradeExecution,
            f"orders not filled within {config.tradeExecution.thresholdSeconds:g} s of submission",
            metric=ORDER_LATENCY,
            selector='stage="fill"',
        ),
        ErrorRateSli(
            "error-rate",
            "Exchange error rate",
            "TraidingErrorRate",
            "error-rate-budget-burn",
            config.errorRate,
            "exchange requests that failed (network, 5xx, timeout, rate limited)",
        ),
    ]


def _windows(config: SloConfig) -> list[str]:
    return list(dict.fromkeys([*WINDOWS, config.window]))


def _runbook(config: SloConfig, anchor: str) -> str:
    return f"{config.runbookUrl}#{anchor}"


def recording_group(config: SloConfig, sli: Sli) -> dict[str, Any]:
    labels = {"slo": sli.slo}
    budget = sli.objective.budget
    rules: list[dict[str, Any]] = []
    for window in _windows(config):
        rules.append(
            {"record": f"slo:sli_error:ratio_rate{window}", "expr": sli.error_ratio(config, window), "labels": labels}
        )
    for window in _windows(config):
        rules.append(
            {
                "record": f"slo:burn_rate:ratio_rate{window}",
                "expr": f'slo:sli_error:ratio_rate{window}{{slo="{sli.slo}"}} / {budget:g}',
                "labels": labels,
            }
        )
    rules += [
        {"record": "slo:objective:ratio", "expr": f"vector({sli.objective.objectivePct / 100:g})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector({budget:g})", "labels": labels},
        {
            "record": "slo:error_budget:remaining_ratio",
            "expr": f'1 - slo:sli_error:ratio_rate{config.window}{{slo="{sli.slo}"}} / {budget:g}',
            "labels": labels,
        },
    ]
    return {"name": f"ai-traiding-slo-{sli.slo}", "rules": rules}


def burn_rate_alert(config: SloConfig, sli: Sli, alert: BurnRateAlert) -> dict[str, Any]:
    selector = f'{{slo="{sli.slo}"}}'
    spent = alert.burnRate * _hours(alert.longWindow) / _hours(config.window) * 100
    action = "Page: act now" if alert.severity == "page" else "Ticket: look at it within a working day"
    return {
        "alert": f"{sli.alert}BudgetBurn",
        "expr": (
            f"slo:burn_rate:ratio_rate{alert.longWindow}{selector} > {alert.burnRate:g} "
            f"and slo:burn_rate:ratio_rate{alert.shortWindow}{selector} > {alert.burnRate:g}"
        ),
        "labels": {
            "severity": alert.severity,
            "slo": sli.slo,
            "long_window": alert.longWindow,
            "short_window": alert.shortWindow,
        },
        "annotations": {
            "summary": (
                f"{sli.title} SLO: error budget burning {alert.burnRate:g}x too fast "
                f"over {alert.longWindow} and {alert.shortWindow}"
            ),
            "description": (
                f"{sli.title} SLO ({sli.objective.objectivePct:g}% over {config.window}; bad: {sli.what}). The error "
                f"budget burns over {alert.burnRate:g}x faster than the SLO allows over {alert.longWindow}, "
                f"confirmed over {alert.shortWindow}: at that rate {spent:.0f}% of the {config.window} budget goes "
                f"in {alert.longWindow}. {action}."
            ),
            "runbook_url": _runbook(config, sli.anchor),
        },
    }


def _hours(duration: str) -> float:
    units = {"m": 1 / 60, "h": 1.0, "d": 24.0, "w": 168.0}
    return float(duration[:-1]) * units[duration[-1]]


def run_alerts(config: SloConfig) -> dict[str, Any]:
    job = _job(config)
    return {
        "name": "ai-traiding-runs",
        "rules": [
            {
                "alert": "TraidingMetricsAbsent",
                "expr": f"absent(traiding_build_info{{{job}}})",
                "for": config.absentFor,
                "labels": {"severity": "page"},
                "annotations": {
                    "summary": "No metrics from the ai-traiding operator",
                    "description": (
                        f"Prometheus has had no traiding_build_info from job {config.job} for {config.absentFor}: "
                        "the operator is not running or not scraped, and every other alert is blind."
                    ),
                    "runbook_url": _runbook(config, "metrics-missing"),
                },
            },
            {
                "alert": "TraidingNightlyRunFailed",
                "expr": (
                    "sum by (from_phase, mode) "
                    f'(increase(traiding_phase_transitions_total{{{job},to_phase="Failed",trigger="nightly"}}[1d])) > 0'
                ),
                "labels": {"severity": "ticket"},
                "annotations": {
                    "summary": "A nightly run failed in {{ $labels.from_phase }}",
                    "description": (
                        "A nightly {{ $labels.mode }} run (label traiding.io/nightly=true) failed in "
                        "{{ $labels.from_phase }} within the last day. `kubectl get tradingruns -l "
                        "traiding.io/nightly=true` shows which; its status says why."
                    ),
                    "runbook_url": _runbook(config, "nightly-run-failed"),
                },
            },
            {
                "alert": "TraidingLiveRunStoppedWithOpenPositions",
                "expr": f'sum(traiding_runs_stopped_with_open_positions{{{job},mode="live"}}) > 0',
                "labels": {"severity": "page"},
                "annotations": {
                    "summary": "A live run stopped with positions still open",
                    "description": (
                        "A finished live run could not close its positions: real funds are exposed with no stop "
                        "loss watching them. Close them on the exchange now."
                    ),
                    "runbook_url": _runbook(config, "live-run-stopped-with-open-positions"),
                },
            },
            {
                "alert": "TraidingLiveKillSwitchTripped",
                "expr": f'sum(increase(traiding_kill_switch_trips_total{{{job},mode="live"}}[15m])) > 0',
                "labels": {"severity": "page"},
                "annotations": {
                    "summary": "A live run tripped its kill switch",
                    "description": (
                        "A live trading session hit its maximum drawdown or daily loss limit in the last 15 minutes "
                        "and stopped trading. Check that it closed its positions and why it lost."
                    ),
                    "runbook_url": _runbook(config, "live-kill-switch-tripped"),
                },
            },
        ],
    }


def rule_groups(config: SloConfig) -> list[dict[str, Any]]:
    groups = [recording_group(config, sli) for sli in slis(config)]
    alerts = [burn_rate_alert(config, sli, alert) for sli in slis(config) for alert in config.burnRates]
    groups.append({"name": "ai-traiding-slo-alerts", "rules": alerts})
    groups.append(run_alerts(config))
    return groups


def prometheus_rule(config: SloConfig) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": {"name": RULE_NAME, "labels": {"app.kubernetes.io/name": "ai-traiding"}},
        "spec": {"groups": rule_groups(config)},
    }


class _PlainDumper(yaml.SafeDumper):
    """No anchors and aliases (`&id001`): the rules read as written, and tools that ignore aliases agree."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, width=120, default_flow_style=False)

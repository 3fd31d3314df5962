"""The shipped PrometheusRule with the real promtool: it is what `traiding slo render` prints, it passes
`promtool check rules`, and `promtool test rules` shows which alerts fire when for fed series."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability_tools import REPO, RULES_FILE, run_tool, tool

JOB = 'job="ai-traiding-operator"'
DAY = 1440  # samples per day at the tests' 1m interval
TRAIDING = Path(sys.executable).parent / "traiding"


def rendered_groups() -> list[dict[str, Any]]:
    return list(yaml.safe_load(RULES_FILE.read_text())["groups"])


def test_the_chart_ships_exactly_what_slo_render_prints() -> None:
    rendered = subprocess.run(
        [str(TRAIDING), "slo", "render", "--spec-only"], capture_output=True, text=True, check=True
    ).stdout
    assert RULES_FILE.read_text() == rendered, "regenerate: traiding slo render --spec-only > " + str(
        RULES_FILE.relative_to(REPO)
    )
    whole = yaml.safe_load(subprocess.run([str(TRAIDING), "slo", "render"], capture_output=True, check=True).stdout)
    assert (whole["apiVersion"], whole["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert whole["spec"] == yaml.safe_load(rendered)


def test_promtool_accepts_the_rules() -> None:
    result = run_tool(tool("promtool"), "check", "rules", RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 96 rules found" in result.stdout


def test_every_alert_has_a_summary_a_description_and_a_runbook_section() -> None:
    troubleshooting = (REPO / "docs" / "troubleshooting.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^## (.+)$", troubleshooting, re.M)
    }
    alerts = [rule for group in rendered_groups() for rule in group["rules"] if "alert" in rule]
    assert len(alerts) == 4 * 4 + 4  # four burn-rate alerts per SLO, absent data, nightly, positions, kill switch
    for rule in alerts:
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        page, anchor = annotations["runbook_url"].split("#")
        assert page.endswith("docs/troubleshooting.md")
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/troubleshooting.md"
        assert rule["labels"]["severity"] in {"page", "ticket"}


def test_every_sli_is_recorded_over_every_window() -> None:
    records = {
        (rule["record"], rule["labels"]["slo"])
        for group in rendered_groups()
        for rule in group["rules"]
        if "record" in rule
    }
    for slo in ("availability", "exchange-latency", "trade-execution", "error-rate"):
        for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"):
            assert (f"slo:sli_error:ratio_rate{window}", slo) in records
            assert (f"slo:burn_rate:ratio_rate{window}", slo) in records
        assert ("slo:error_budget:remaining_ratio", slo) in records


# --- promtool test rules ---------------------------------------------------------------------------------


@dataclass
class Scenario:
    """Series fed to promtool and the alerts expected at given minutes (every other alert: none)."""

    series: dict[str, str]
    expected: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    checked: tuple[str, ...] = ()  # alert names asserted at every expected minute


def healthy_base(minutes: int) -> dict[str, str]:
    """The operator up and scraped: no absent-data or availability alert."""
    return {
        f'traiding_build_info{{{JOB},instance="op:8000",version="0.1.0",component="operator",python="3.11"}}': (
            f"1x{minutes}"
        ),
        f'up{{{JOB},instance="op:8000"}}': f"1x{minutes}",
    }


def requests(minutes: int, ok_per_min: int, errors_per_min: int = 0, fast_per_min: int | None = None) -> dict[str, str]:
    """Exchange requests: `ok_per_min` answered (of which `fast_per_min` under 500 ms) and failed ones."""
    fast = ok_per_min if fast_per_min is None else fast_per_min
    metric = "traiding_exchange_request_duration_seconds"
    labels = f'{JOB},instance="op:8000",exchange="binance",endpoint="market_data"'
    series = {
        f'{metric}_count{{{labels},outcome="ok"}}': f"0+{ok_per_min}x{minutes}",
        f'{metric}_bucket{{{labels},outcome="ok",le="0.5"}}': f"0+{fast}x{minutes}",
    }
    if errors_per_min:
        series[f'{metric}_count{{{labels},outcome="error"}}'] = f"0+{errors_per_min}x{minutes}"
        series[f'{metric}_bucket{{{labels},outcome="error",le="0.5"}}'] = f"0+{errors_per_min}x{minutes}"
    return series


def fills(minutes: int, per_min: int, fast_per_min: int | None = None) -> dict[str, str]:
    fast = per_min if fast_per_min is None else fast_per_min
    labels = f'{JOB},instance="op:8000",exchange="binance",mode="live",stage="fill"'
    return {
        f"traiding_order_latency_seconds_count{{{labels}}}": f"0+{per_min}x{minutes}",
        f'traiding_order_latency_seconds_bucket{{{labels},le="1.0"}}': f"0+{fast}x{minutes}",
    }


ALL_ALERTS = (
    "TraidingAvailabilityBudgetBurn",
    "TraidingExchangeLatencyBudgetBurn",
    "TraidingTradeExecutionBudgetBurn",
    "TraidingErrorRateBudgetBurn",
    "TraidingMetricsAbsent",
    "TraidingNightlyRunFailed",
    "TraidingLiveRunStoppedWithOpenPositions",
    "TraidingLiveKillSwitchTripped",
)


def burn(alertname: str, slo: str, severity: str, long_window: str, short_window: str) -> dict[str, str]:
    return {
        "alertname": alertname,
        "slo": slo,
        "severity": severity,
        "long_window": long_window,
        "short_window": short_window,
    }


def annotations_for(labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations for an alert with `labels`, its `$labels` templates filled in."""
    for group in rendered_groups():
        for rule in group["rules"]:
            if rule.get("alert") == labels["alertname"] and rule["labels"].items() <= labels.items():
                return {
                    key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
                    for key, text in rule["annotations"].items()
                }
    raise AssertionError(f"no rule for {labels}")


def promtool_test(tmp_path: Path, scenario: Scenario) -> None:
    tests = {
        "rule_files": [str(RULES_FILE)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in scenario.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": f"{minute}m",
                        "alertname": name,
                        "exp_alerts": [
                            {
                                "exp_labels": {k: v for k, v in alert.items() if k != "alertname"},
                                "exp_annotations": annotations_for(alert),
                            }
                            for alert in alerts
                            if alert["alertname"] == name
                        ],
                    }
                    for minute, alerts in scenario.expected.items()
                    for name in scenario.checked
                ],
            }
        ],
    }
    path = tmp_path / "rules_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run_tool(tool("promtool"), "test", "rules", path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_full_outage_pages_within_five_minutes_then_every_window_agrees(tmp_path: Path) -> None:
    outage_start = 3 * DAY  # three days up: every window up to 3d is full
    series = healthy_base(outage_start + 60)
    series[f'up{{{JOB},instance="op:8000"}}'] = f"1x{outage_start - 1} 0x60"  # down from minute outage_start
    page_1h = burn("TraidingAvailabilityBudgetBurn", "availability", "page", "1h", "5m")
    everything = [
        page_1h,
        burn("TraidingAvailabilityBudgetBurn", "availability", "page", "6h", "30m"),
        burn("TraidingAvailabilityBudgetBurn", "availability", "ticket", "1d", "2h"),
        burn("TraidingAvailabilityBudgetBurn", "availability", "ticket", "3d", "6h"),
    ]
    scenario = Scenario(
        series,
        expected={
            outage_start - 1: [],
            outage_start + 3: [],  # 3 minutes down: under 7.2% of the last hour
            outage_start + 5: [page_1h],  # the fast page, nothing slower yet
            outage_start + 30: everything,
        },
        checked=ALL_ALERTS,
    )
    promtool_test(tmp_path, scenario)


def test_a_slow_burn_opens_tickets_and_does_not_page(tmp_path: Path) -> None:
    minutes = DAY + 180
    # 4% of exchange requests fail: four times the 1% budget, below the pages' 6x and 14.4x.
    series = healthy_base(minutes) | requests(minutes, ok_per_min=96, errors_per_min=4)
    tickets = [
        burn("TraidingErrorRateBudgetBurn", "error-rate", "ticket", "1d", "2h"),
        burn("TraidingErrorRateBudgetBurn", "error-rate", "ticket", "3d", "6h"),
    ]
    scenario = Scenario(series, expected={60: tickets, DAY + 120: tickets}, checked=ALL_ALERTS)
    promtool_test(tmp_path, scenario)


def test_slow_exchange_answers_page_on_the_latency_slo(tmp_path: Path) -> None:
    minutes = 120
    # 80% of answers slower than 500 ms: 16x the 5% budget.
    series = healthy_base(minutes) | requests(minutes, ok_per_min=100, fast_per_min=20)
    all_windows = [
        burn("TraidingExchangeLatencyBudgetBurn", "exchange-latency", "page", "1h", "5m"),
        burn("TraidingExchangeLatencyBudgetBurn", "exchange-latency", "page", "6h", "30m"),
        burn("TraidingExchangeLatencyBudgetBurn", "exchange-latency", "ticket", "1d", "2h"),
        burn("TraidingExchangeLatencyBudgetBurn", "exchange-latency", "ticket", "3d", "6h"),
    ]
    promtool_test(tmp_path, Scenario(series, expected={30: all_windows}, checked=ALL_ALERTS))


def test_a_healthy_system_fires_nothing(tmp_path: Path) -> None:
    minutes = 2 * DAY
    # Busy and well: 0.5% errors, 98% of answers under 500 ms, 99.5% of fills within 1 s, a kill switch and
    # a failed run in dry runs, and a failed manual run: none of it is an alert.
    series = (
        healthy_base(minutes)
        | requests(minutes, ok_per_min=995, errors_per_min=5, fast_per_min=980)
        | fills(minutes, per_min=200, fast_per_min=199)
        | {
            f'traiding_kill_switch_trips_total{{{JOB},instance="op:8000",mode="dry-run",trigger="nightly"}}': (
                f"0x60 1x{minutes - 60}"
            ),
            f'traiding_runs_stopped_with_open_positions{{{JOB},instance="op:8000",mode="dry-run",trigger="manual"}}': (
                f"1x{minutes}"
            ),
            f'traiding_phase_transitions_total{{{JOB},instance="op:8000",from_phase="Backtest",to_phase="Failed",'
            f'mode="dry-run",trigger="manual"}}': f"0x60 1x{minutes - 60}",
        }
    )
    expected: dict[int, list[dict[str, str]]] = {minute: [] for minute in (10, 61, 70, 600, DAY, 2 * DAY - 1)}
    promtool_test(tmp_path, Scenario(series, expected=expected, checked=ALL_ALERTS))


def test_missing_metrics_raise_the_absent_data_alert(tmp_path: Path) -> None:
    series = healthy_base(120)
    # The operator's metrics stop after 30 minutes (no target: no `up` either).
    for name in list(series):
        series[name] = "1x30 _x90"
    absent = {"alertname": "TraidingMetricsAbsent", "job": "ai-traiding-operator", "severity": "page"}
    scenario = Scenario(
        series,
        expected={30: [], 40: [], 50: [absent], 119: [absent]},  # stale after 5 minutes, then 10 minutes pending
        checked=ALL_ALERTS,
    )
    promtool_test(tmp_path, scenario)


def test_a_failed_nightly_run_opens_a_ticket(tmp_path: Path) -> None:
    minutes = DAY + 120
    series = healthy_base(minutes) | {
        f'traiding_phase_transitions_total{{{JOB},instance="op:8000",from_phase="DataCheck",to_phase="Failed",'
        f'mode="dry-run",trigger="nightly"}}': f"0x60 1x{minutes - 60}",
    }
    ticket = {
        "alertname": "TraidingNightlyRunFailed",
        "severity": "ticket",
        "from_phase": "DataCheck",
        "mode": "dry-run",
    }
    scenario = Scenario(
        series,
        expected={59: [], 62: [ticket], DAY: [ticket], DAY + 62: []},  # a day later it has resolved
        checked=ALL_ALERTS,
    )
    promtool_test(tmp_path, scenario)


def test_a_live_run_left_with_open_positions_pages_until_it_is_dealt_with(tmp_path: Path) -> None:
    series = healthy_base(120) | {
        f'traiding_runs_stopped_with_open_positions{{{JOB},instance="op:8000",mode="live",trigger="manual"}}': (
            "0x10 1x60 0x49"
        ),
    }
    page = {"alertname": "TraidingLiveRunStoppedWithOpenPositions", "severity": "page"}
    scenario = Scenario(series, expected={9: [], 11: [page], 70: [page], 72: []}, checked=ALL_ALERTS)
    promtool_test(tmp_path, scenario)


def test_a_live_kill_switch_pages(tmp_path: Path) -> None:
    series = healthy_base(120) | {
        f'traiding_kill_switch_trips_total{{{JOB},instance="op:8000",mode="live",trigger="manual"}}': "0x10 1x109",
    }
    page = {"alertname": "TraidingLiveKillSwitchTripped", "severity": "page"}
    scenario = Scenario(series, expected={9: [], 11: [page], 24: [page], 40: []}, checked=ALL_ALERTS)
    promtool_test(tmp_path, scenario)


@pytest.mark.parametrize("minute", [9, 11])
def test_the_scenarios_checker_fails_when_an_alert_is_not_expected(tmp_path: Path, minute: int) -> None:
    """A wrong expectation fails promtool: the scenarios above could fail."""
    series = healthy_base(30) | {
        f'traiding_kill_switch_trips_total{{{JOB},instance="op:8000",mode="live",trigger="manual"}}': "0x10 1x19",
    }
    wrong = [] if minute == 11 else [{"alertname": "TraidingLiveKillSwitchTripped", "severity": "page"}]
    with pytest.raises(AssertionError, match="FAILED"):
        promtool_test(tmp_path, Scenario(series, expected={minute: wrong}, checked=("TraidingLiveKillSwitchTripped",)))

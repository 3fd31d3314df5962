"""The example Alertmanager configuration with the real amtool: valid, pages to Slack, tickets to email."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.observability_tools import ALERTMANAGER_EXAMPLE, RULES_FILE, run_tool, tool


def route(*labels: str, config: Path = ALERTMANAGER_EXAMPLE) -> str:
    result = run_tool(tool("amtool"), "config", "routes", "test", f"--config.file={config}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_amtool_accepts_the_example() -> None:
    result = run_tool(tool("amtool"), "check-config", ALERTMANAGER_EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yaml"
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    config["route"]["routes"][0]["receiver"] = "nobody"  # a receiver that is not defined
    broken.write_text(yaml.safe_dump(config))
    result = run_tool(tool("amtool"), "check-config", broken)
    assert result.returncode != 0
    assert "nobody" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("severity", "receiver"), [("page", "pages-slack"), ("ticket", "tickets-email"), ("", "tickets-email")]
)
def test_alerts_route_by_severity(severity: str, receiver: str) -> None:
    labels = ["alertname=TraidingAvailabilityBudgetBurn", "slo=availability"]
    assert route(*labels, *([f"severity={severity}"] if severity else [])) == receiver


def test_every_alert_of_the_rules_reaches_its_receiver() -> None:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    expected = {"page": "pages-slack", "ticket": "tickets-email"}
    for rule in alerts:
        severity = rule["labels"]["severity"]
        assert route(f"alertname={rule['alert']}", f"severity={severity}") == expected[severity], rule["alert"]

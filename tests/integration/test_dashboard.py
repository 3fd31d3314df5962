"""The Grafana dashboard's structure, checked the way Grafana's dashboard-linter checks it (that linter does
not build from the Go module proxy here; see docs/observability.md), plus every query parsed by promtool.

The real Prometheus end-to-end test (test_prometheus_e2e.py) runs every query against real data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.observability_tools import DASHBOARD_FILE, run_tool, tool

DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
TARGETS = [(p["title"], t["expr"]) for p in PANELS for t in p["targets"]]
VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
RAW_METRIC = re.compile(r"\b(traiding_[a-z_]+)(\{[^}]*\})?")
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
UNITS = {"short", "percent", "percentunit", "s", "ms", "reqps", "none"}


def grafana_substituted(expr: str, rate_interval: str = "1m", job: str = ".+", instance: str = ".+") -> str:
    """The query as Grafana sends it for the given variable values."""
    return expr.replace("$__rate_interval", rate_interval).replace("$job", job).replace("$instance", instance)


def test_the_issue_asks_for_these_panels() -> None:
    titles = {p["title"] for p in PANELS}
    assert {
        "Runs by phase",
        "ROI per run",
        "PnL per run",
        "Exchange latency p95",
        "Order execution p99",
        "Exchange error ratio",
        "Error budget remaining",
        "Burn rate, fast windows",
        "Burn rate, slow windows",
    } <= titles


def test_template_variables_datasource_job_and_instance() -> None:
    # linter rules template-datasource-rule, template-job-rule, template-instance-rule
    datasource = VARIABLES["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    for name in ("job", "instance"):
        variable = VARIABLES[name]
        assert variable["type"] == "query"
        assert variable["datasource"]["uid"] == "${datasource}"
        assert variable["multi"] is True and variable["includeAll"] is True
        assert f", {name})" in variable["query"]["query"]


def test_every_panel_has_title_description_datasource_unit_and_targets() -> None:
    # linter rules panel-title-description-rule, panel-datasource-rule, panel-units-rule, panel-no-targets-rule
    for panel in PANELS:
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_raw_metric_selector_filters_on_job_and_instance() -> None:
    # linter rule target-job-rule / target-instance-rule (recording rules of the SLOs carry neither label)
    for title, expr in TARGETS:
        for match in RAW_METRIC.finditer(expr):
            selector = match.group(2) or ""
            assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, f"{title}: {match.group(0)}"


def test_counters_are_only_read_through_rate_or_increase_over_the_rate_interval() -> None:
    # linter rules target-counter-agg-rule and target-rate-interval-rule
    for title, expr in TARGETS:
        for match in RAW_METRIC.finditer(expr):
            if match.group(1).endswith(COUNTER_SUFFIXES):
                before, after = expr[: match.start()], expr[match.end() :]
                assert re.search(r"\b(rate|increase)\(\s*$", before), f"{title}: {match.group(1)} outside rate()"
                assert after.startswith("[$__rate_interval])"), f"{title}: {match.group(1)} window"
        assert not re.search(r"\[\d+[smhd]\]", expr), f"{title}: a fixed range instead of $__rate_interval"


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: set[tuple[int, int]] = set()
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered


def test_the_dashboard_is_provisioned_not_edited() -> None:
    # linter rule uneditable-rule; a stable uid keeps links working across installs
    assert DASHBOARD["editable"] is False
    assert DASHBOARD["uid"] == "ai-traiding" and DASHBOARD["title"]


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": grafana_substituted(expr)}
                    for i, (_, expr) in enumerate(TARGETS)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = run_tool(tool("promtool"), "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(TARGETS)} rules found" in result.stdout


def test_promtool_would_catch_a_broken_query(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(rate(x[1m])"}]}]})
    )
    assert run_tool(tool("promtool"), "check", "rules", path).returncode != 0

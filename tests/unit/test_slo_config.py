"""SLOs as typed configuration: the defaults, errors that name the field, and what a change renders."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from traiding.cli import main
from traiding.errors import UserError
from traiding.telemetry.rules import prometheus_rule
from traiding.telemetry.slo import SloConfig, load_slo_config


def test_the_four_default_objectives() -> None:
    config = SloConfig()
    assert config.window == "30d"
    assert (config.availability.objectivePct, config.availability.budget) == (99.5, 0.005)
    assert (config.exchangeLatency.objectivePct, config.exchangeLatency.thresholdSeconds) == (95, 0.5)
    assert (config.tradeExecution.objectivePct, config.tradeExecution.thresholdSeconds) == (99, 1.0)
    assert config.errorRate.budget == pytest.approx(0.01)
    assert [(a.severity, a.burnRate, a.longWindow, a.shortWindow) for a in config.burnRates] == [
        ("page", 14.4, "1h", "5m"),
        ("page", 6, "6h", "30m"),
        ("ticket", 3, "1d", "2h"),
        ("ticket", 1, "3d", "6h"),
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"exchangeLatency": {"objectivePct": 95, "thresholdSeconds": 0.3}}, "exchangeLatency.thresholdSeconds 0.3"),
        ({"availability": {"objectivePct": 100}}, "availability.objectivePct"),
        ({"window": "14d"}, "window: Value error, '14d' is not a recorded window"),
        (
            {"burnRates": [{"severity": "page", "burnRate": 2, "longWindow": "4h", "shortWindow": "5m"}]},
            "burnRates.0.longWindow",
        ),
        ({"availabilty": {"objectivePct": 99}}, "availabilty: Extra inputs are not permitted"),
        ({"absentFor": "ten minutes"}, "absentFor"),
    ],
)
def test_bad_configuration_names_the_field(tmp_path: Path, document: dict[str, object], message: str) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_slo_config(path)


def test_a_changed_objective_changes_the_rules() -> None:
    rule = prometheus_rule(SloConfig.model_validate({"availability": {"objectivePct": 99.9}, "job": "traiding"}))
    availability = next(g for g in rule["spec"]["groups"] if g["name"] == "ai-traiding-slo-availability")
    exprs = {r["record"]: r["expr"] for r in availability["rules"]}
    assert exprs["slo:burn_rate:ratio_rate1h"] == 'slo:sli_error:ratio_rate1h{slo="availability"} / 0.001'
    assert 'up{job="traiding"}' in exprs["slo:sli_error:ratio_rate5m"]
    assert exprs["slo:error_budget:ratio"] == "vector(0.001)"


def test_slo_render_reads_a_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text("errorRate: {objectivePct: 99.9}\n")
    assert main(["slo", "render", "--config", str(path)]) == 0
    rendered = yaml.safe_load(capsys.readouterr().out)
    assert rendered["kind"] == "PrometheusRule"
    errors = next(g for g in rendered["spec"]["groups"] if g["name"] == "ai-traiding-slo-error-rate")
    assert {r["expr"] for r in errors["rules"] if r["record"] == "slo:error_budget:ratio"} == {"vector(0.001)"}


def test_a_missing_config_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slo", "render", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err

"""The TradingRun model, the CRD generated from it, and manifest errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from traiding.cli import main
from traiding.crd import build_crd, missing_descriptions, render_crd
from traiding.errors import UserError
from traiding.manifest import load_manifest, parse_manifest
from traiding.resource import Mode, TradingRunSpec

REPO = Path(__file__).resolve().parents[2]


def manifest(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "market": {"symbols": ["BTC/USDT"], "timeframe": "5m"},
        "strategy": {"name": "sma-crossover", "params": {"fast": 20, "slow": 50}},
    }
    base.update(spec)
    return {"apiVersion": "traiding.io/v1alpha1", "kind": "TradingRun", "metadata": {"name": "t"}, "spec": base}


def test_dry_run_is_the_default_mode() -> None:
    run = parse_manifest(manifest())
    assert run.spec.mode is Mode.DRY_RUN
    assert run.spec.exchange.credentialsSecretRef is None


def test_committed_crd_matches_the_model() -> None:
    committed = (REPO / "crds" / "tradingrun.yaml").read_text()
    assert committed == render_crd(), "crds/tradingrun.yaml is stale: run `traiding crd -o crds/tradingrun.yaml`"


def test_crd_cli_prints_the_generated_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == build_crd()


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_every_field_has_a_description() -> None:
    properties = _schema()["properties"]
    assert missing_descriptions(properties["spec"], "spec") == []
    assert missing_descriptions(properties["status"], "status") == []
    # The API server accepts nothing but the type for metadata (it is implicit).
    assert properties["metadata"] == {"type": "object"}


def test_schema_is_structural() -> None:
    forbidden = {"$ref", "anyOf", "allOf", "oneOf", "$defs", "title", "const"}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            assert not forbidden & node.keys(), f"{path} uses {forbidden & node.keys()}"
            if "properties" in node:
                assert "additionalProperties" not in node, path
            for bound in ("exclusiveMinimum", "exclusiveMaximum"):
                assert isinstance(node.get(bound, True), bool), f"{path}.{bound} must be boolean in OpenAPI v3.0"
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    walk(_schema(), "")


def test_crd_names_columns_and_subresource() -> None:
    crd = build_crd()
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("TradingRun", "tradingruns", ["tr"])
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Mode", "Strategy", "Symbols", "ROI", "Age"]


def test_cross_field_rules_are_in_the_crd() -> None:
    spec = _schema()["properties"]["spec"]
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert any("credentialsSecretRef" in r for r in rules)
    strategy_rules = [v["rule"] for v in spec["properties"]["strategy"]["x-kubernetes-validations"]]
    assert any("slow" in r and "fast" in r for r in strategy_rules)
    assert spec["properties"]["capital"]["properties"]["initial"]["exclusiveMinimum"] is True


def test_the_replay_start_is_an_rfc3339_time_in_the_crd_and_only_for_a_simulator_traiding_run_starts() -> None:
    simulator = _schema()["properties"]["spec"]["properties"]["exchange"]["properties"]["simulator"]
    start = simulator["properties"]["start"]
    assert (start["type"], start["format"]) == ("string", "date-time")
    assert "80% through the span" in start["description"] and "real and synthetic data alike" in start["description"]
    assert "synthetic" in simulator["properties"]["data"]["description"]
    assert [v["rule"] for v in simulator["x-kubernetes-validations"]] == [
        "!has(self.name) || (!has(self.data) && !has(self.start))"
    ]
    run = parse_manifest(manifest(exchange={"simulator": {"start": "2021-06-01T00:00:00+02:00"}}))
    assert run.spec.exchange.simulator is not None and run.spec.exchange.simulator.start is not None
    assert run.spec.exchange.simulator.start.timestamp() == 1_622_498_400  # 2021-05-31T22:00:00Z


def test_nested_objects_default_so_the_api_server_fills_their_fields() -> None:
    spec = _schema()["properties"]["spec"]
    assert spec["properties"]["gates"]["default"] == {}
    assert spec["properties"]["mode"]["default"] == "dry-run"


@pytest.mark.parametrize(
    ("spec_patch", "field", "words"),
    [
        ({"mode": "live"}, "spec", "live runs need exchange.credentialsSecretRef"),
        ({"strategy": {"name": "sma-crossover", "params": {"fast": 50, "slow": 20}}}, "spec.strategy", "slow"),
        ({"capital": {"initial": 0}}, "spec.capital.initial", "greater than 0"),
        ({"market": {"symbols": ["btcusdt"]}}, "spec.market.symbols[0]", "pattern"),
        ({"market": {"symbols": []}}, "spec.market.symbols", "at least 1"),
        ({"market": {"symbols": ["BTC/USDT"], "timeframe": "7m"}}, "spec.market.timeframe", "'5m'"),
        ({"risk": {"maxPositionFraction": 1.5}}, "spec.risk.maxPositionFraction", "less than or equal to 1"),
        ({"gates": {"dataCheck": {"lookback": "30 days"}}}, "spec.gates.dataCheck.lookback", "pattern"),
        ({"mode": "paper"}, "spec.mode", "dry-run"),
        ({"sesion": {"duration": "1h"}}, "spec.sesion", "Extra inputs are not permitted"),
        ({"exchange": {"simulator": {"start": "2021-06-01T00:00:00"}}}, "spec.exchange.simulator.start", "timezone"),
        ({"exchange": {"simulator": {"start": "yesterday"}}}, "spec.exchange.simulator.start", "datetime"),
        (
            {"exchange": {"simulator": {"name": "in-cluster", "start": "2021-06-01T00:00:00Z"}}},
            "spec.exchange.simulator",
            "a named simulator (simulator.name) replays its own data from its own start",
        ),
        # No address in a spec: a simulator is a name from the installation's allowlist, keys have fixed names.
        ({"exchange": {"simulator": {"url": "http://evil.example"}}}, "spec.exchange.simulator.url", "Extra inputs"),
        ({"exchange": {"simulator": {"name": "http://evil.example"}}}, "spec.exchange.simulator.name", "pattern"),
        (
            {"exchange": {"credentialsSecretRef": {"name": "keys", "apiKeyKey": "other"}}},
            "spec.exchange.credentialsSecretRef.apiKeyKey",
            "Extra inputs",
        ),
    ],
)
def test_invalid_spec_errors_name_the_field(spec_patch: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(UserError) as info:
        parse_manifest(manifest(**spec_patch), "run.yaml")
    message = str(info.value)
    assert message.startswith("run.yaml: invalid TradingRun: ")
    assert f"{field}:" in message
    assert words in message


def test_live_with_credentials_is_valid() -> None:
    run = parse_manifest(manifest(mode="live", exchange={"credentialsSecretRef": {"name": "binance-keys"}}))
    assert run.spec.mode is Mode.LIVE


def test_spec_is_immutable() -> None:
    spec = parse_manifest(manifest()).spec
    with pytest.raises(Exception, match="frozen"):
        spec.mode = Mode.LIVE  # type: ignore[misc]
    assert isinstance(spec, TradingRunSpec)


def test_load_manifest_reports_yaml_and_shape_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed")
    with pytest.raises(UserError, match=r"bad\.yaml: not valid YAML"):
        load_manifest(bad)
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(manifest()) + "---\n" + yaml.safe_dump(manifest()))
    with pytest.raises(UserError, match="exactly one TradingRun document, found 2"):
        load_manifest(two)
    with pytest.raises(UserError, match="cannot read"):
        load_manifest(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(manifest()))
    assert load_manifest(good).metadata.name == "t"


def test_strategy_parameters_are_checked_against_the_registry() -> None:
    with pytest.raises(UserError) as info:
        parse_manifest(manifest(strategy={"name": "sma-crossover", "params": {"fast": 10, "slwo": 30}}), "run.yaml")
    message = str(info.value)
    assert message.startswith("run.yaml: invalid TradingRun: spec.strategy: ")
    assert "'slwo'" in message and "valid parameters: fast" in message
    with pytest.raises(UserError, match=r"available strategies: .*sma-crossover"):
        parse_manifest(manifest(strategy={"name": "sma-cross"}), "run.yaml")

"""The operator's settings: `.env.example` names every one and loads as it is; bad values name their variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from traiding.errors import UserError
from traiding.settings import EndpointNotAllowed, EndpointSettings, load_settings
from traiding_operator.config import OperatorSettings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / ".env.example"


def test_the_env_example_names_every_setting_and_loads_as_it_is() -> None:
    text = EXAMPLE.read_text()
    for field in OperatorSettings.model_fields:
        assert f"TRAIDING_{field.upper()}=" in text, field
    settings = OperatorSettings(_env_file=EXAMPLE)
    assert settings.simulator_url(None) == "http://127.0.0.1:8080/"
    assert (settings.operator_namespace, settings.keys_secret, settings.kill_switch_poll_seconds) == (
        "trading",
        "traiding-keys",
        1.0,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRAIDING_KILL_SWITCH_POLL_SECONDS": "60"}, "TRAIDING_KILL_SWITCH_POLL_SECONDS: Input should be less than"),
        ({"TRAIDING_EXCHANGES": "binance"}, "TRAIDING_EXCHANGES: not valid JSON"),
        (
            {"TRAIDING_SIMULATORS": '{"Bad Name": "http://x"}'},
            "TRAIDING_SIMULATORS['Bad Name']: String should match pattern",
        ),
        ({"TRAIDING_KEYS_SECRET": "keys"}, "TRAIDING_KEYS_SECRET needs TRAIDING_OPERATOR_NAMESPACE"),
        ({"TRAIDING_REQUIRE_ENCRYPTED_KEYS": "true"}, "TRAIDING_REQUIRE_ENCRYPTED_KEYS needs TRAIDING_KEYS_SECRET"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError) as info:
        load_settings(OperatorSettings)
    assert message in str(info.value)


def test_endpoints_come_only_from_the_allowlist() -> None:
    settings = EndpointSettings(simulators={"eu": "http://10.0.0.5:8080"}, exchanges=["binance"])
    assert settings.simulator_url("eu") == "http://10.0.0.5:8080/"
    with pytest.raises(EndpointNotAllowed) as named:
        settings.simulator_url("rogue")
    assert named.value.reason == "SimulatorNotAllowed" and "configured: eu" in str(named.value)
    with pytest.raises(EndpointNotAllowed) as unnamed:
        settings.simulator_url(None)
    assert unnamed.value.reason == "SimulatorNotConfigured"
    settings.check_exchange("binance")
    with pytest.raises(EndpointNotAllowed) as exchange:
        settings.check_exchange("kraken")
    assert exchange.value.reason == "ExchangeNotAllowed" and "allowed: binance" in str(exchange.value)

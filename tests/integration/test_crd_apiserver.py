"""The generated TradingRun CRD on a real API server: defaults, pruning, validation messages, columns, status."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "traiding.io", "v1alpha1", "tradingruns"


@pytest.fixture(scope="module")
def crd_installed(k8s_api: Any) -> Iterator[None]:
    ext = client.ApiextensionsV1Api(k8s_api)
    body = yaml.safe_load((REPO / "crds" / "tradingrun.yaml").read_text())
    name = body["metadata"]["name"]
    try:
        current = ext.read_custom_resource_definition(name)
        assert current.metadata is not None
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)
    except ApiException as error:
        if error.status != 404:
            raise
        ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition(name).status
        conditions = (status.conditions if status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the TradingRun CRD never became Established")
    yield


def run_body(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "market": {"symbols": ["BTC/USDT"]},
        "strategy": {"name": "sma-crossover", "params": {"fast": 20, "slow": 50}},
    }
    base.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TradingRun", "metadata": {"name": name}, "spec": base}


def create(k8s_api: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    api = client.CustomObjectsApi(k8s_api)
    return cast(dict[str, Any], api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))


def get_run(k8s_api: Any, namespace: str, name: str) -> dict[str, Any]:
    api = client.CustomObjectsApi(k8s_api)
    return cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))


def rejection(k8s_api: Any, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as info:
        create(k8s_api, namespace, body)
    assert info.value.status == 422
    return str(info.value.body)


def test_the_api_server_fills_in_defaults_and_prunes_unknown_fields(
    crd_installed: None, k8s_api: Any, k8s_namespace: str
) -> None:
    body = run_body("defaults")
    body["spec"]["market"]["colour"] = "blue"
    created = create(k8s_api, k8s_namespace, body)
    spec = created["spec"]
    assert spec["mode"] == "dry-run"
    assert spec["market"] == {"symbols": ["BTC/USDT"], "timeframe": "5m"}
    assert spec["gates"]["backtest"]["minTrades"] == 20
    assert spec["gates"]["dataCheck"]["lookback"] == "30d"
    assert spec["risk"]["maxDrawdownPct"] == 20


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        (
            {"strategy": {"name": "sma-crossover", "params": {"fast": 50, "slow": 20}}},
            "strategy.params.slow must be greater than strategy.params.fast",
        ),
        ({"mode": "live"}, "live runs need exchange.credentialsSecretRef"),
        ({"capital": {"initial": 0}}, "spec.capital.initial"),
        ({"market": {"symbols": ["btc-usdt"]}}, "spec.market.symbols[0]"),
        ({"market": {"symbols": ["BTC/USDT"], "timeframe": "7m"}}, "spec.market.timeframe"),
        ({"mode": "paper"}, "spec.mode"),
        ({"risk": {"maxPositionFraction": 2}}, "spec.risk.maxPositionFraction"),
    ],
)
def test_invalid_manifests_are_rejected_naming_the_field(
    crd_installed: None, k8s_api: Any, k8s_namespace: str, patch: dict[str, Any], words: str
) -> None:
    message = rejection(k8s_api, k8s_namespace, run_body("invalid", **copy.deepcopy(patch)))
    assert words in message


def test_a_live_run_with_credentials_is_admitted(crd_installed: None, k8s_api: Any, k8s_namespace: str) -> None:
    created = create(
        k8s_api, k8s_namespace, run_body("live", mode="live", exchange={"credentialsSecretRef": {"name": "keys"}})
    )
    assert created["spec"]["exchange"]["credentialsSecretRef"] == {"name": "keys"}  # its key names are fixed


def test_status_is_a_subresource_and_columns_show_phase_and_roi(
    crd_installed: None, k8s_api: Any, k8s_namespace: str
) -> None:
    api = client.CustomObjectsApi(k8s_api)
    create(k8s_api, k8s_namespace, run_body("columns"))
    # A status written through the main resource is ignored; through /status it lands.
    api.patch_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, PLURAL, "columns", {"status": {"phase": "Trading"}}
    )
    assert "status" not in get_run(k8s_api, k8s_namespace, "columns")
    api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        k8s_namespace,
        PLURAL,
        "columns",
        {"status": {"phase": "Succeeded", "summary": {"roiPct": 1.25}}, "spec": {"mode": "live"}},
    )
    obj = get_run(k8s_api, k8s_namespace, "columns")
    assert obj["status"]["phase"] == "Succeeded"
    assert obj["spec"]["mode"] == "dry-run"

    # What `kubectl get tradingruns` shows: the server-side table built from the printer columns.
    method, url, headers, _, _ = k8s_api.param_serialize(
        "GET",
        f"/apis/{GROUP}/{VERSION}/namespaces/{k8s_namespace}/{PLURAL}",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = k8s_api.call_api(method, url, headers)
    response.read()
    table = json.loads(response.data)
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Phase", "Mode", "Strategy", "Symbols", "ROI", "Age"]
    row = table["rows"][0]["cells"]
    assert row[1:4] == ["Succeeded", "dry-run", "sma-crossover"]
    assert row[5] == 1.25

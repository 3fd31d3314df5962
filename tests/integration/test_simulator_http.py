"""The simulator at the HTTP level (plain aiohttp client): signatures as sent on the wire, weight headers,
fault rules, maintenance answers and the /_sim control API."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from pydantic import SecretStr

from traiding_simulator import ApiKeyConfig, SimulatorConfig, run_simulator, start_simulator_thread
from traiding_simulator.auth import sign
from traiding_simulator.server import Simulator

KEY, SECRET = "http-key", "http-secret"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        keys=[ApiKeyConfig(key=KEY, secret=SecretStr(SECRET))], synthetic_days=2, log_requests=False
    )
    async with run_simulator(config) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def now_ms() -> int:
    return int(time.time() * 1000)


def signed_query(params: dict[str, Any], secret: str = SECRET) -> str:
    query = urlencode(params)
    return f"{query}&signature={sign(secret, query)}"


async def call(
    http: aiohttp.ClientSession, method: str, url: str, *, body: str | None = None, key: str | None = KEY
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    headers = {"X-MBX-APIKEY": key} if key else {}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with http.request(method, url, data=body, headers=headers) as response:
        text = await response.text()
        return response.status, json.loads(text) if text.startswith(("{", "[")) else text, response.headers


async def test_signed_get_with_the_signature_in_the_query(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, data, headers = await call(
        http, "GET", f"{sim.base_url}/api/v3/account?{signed_query({'timestamp': now_ms()})}"
    )
    assert status == 200 and data["permissions"] == ["SPOT"] and data["canTrade"] is True
    assert headers["X-MBX-USED-WEIGHT-1M"] == "20"


async def test_signed_post_with_the_signature_in_the_body(sim: Simulator, http: aiohttp.ClientSession) -> None:
    body = signed_query(
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001", "timestamp": now_ms()}
    )
    status, data, headers = await call(http, "POST", f"{sim.base_url}/api/v3/order", body=body)
    assert status == 200 and data["status"] == "FILLED" and len(data["fills"]) == 1
    assert headers["X-MBX-ORDER-COUNT-10S"] == "1"


async def test_query_and_body_are_signed_concatenated(sim: Simulator, http: aiohttp.ClientSession) -> None:
    query = "symbol=BTCUSDT&side=BUY&type=MARKET"
    body = f"quantity=0.001&newOrderRespType=ACK&timestamp={now_ms()}"
    url = f"{sim.base_url}/api/v3/order?{query}"
    status, data, _ = await call(http, "POST", url, body=f"{body}&signature={sign(SECRET, query + body)}")
    assert status == 200 and set(data) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    wrong = sign(SECRET, query + "&" + body)  # joining with "&" is not what Binance signs
    status, data, _ = await call(http, "POST", url, body=f"{body}&signature={wrong}")
    assert (status, data["code"]) == (400, -1022)


async def test_a_tampered_parameter_breaks_the_signature(sim: Simulator, http: aiohttp.ClientSession) -> None:
    query = signed_query({"symbol": "BTCUSDT", "timestamp": now_ms()}).replace("BTCUSDT", "ETHUSDT")
    status, data, _ = await call(http, "GET", f"{sim.base_url}/api/v3/openOrders?{query}")
    assert (status, data) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})


async def test_missing_and_unknown_api_keys(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.base_url}/api/v3/account?{signed_query({'timestamp': now_ms()})}"
    status, data, _ = await call(http, "GET", url, key=None)
    assert (status, data["code"]) == (401, -2014)
    status, data, _ = await call(http, "GET", url, key="who")
    assert (status, data["code"]) == (401, -2015)


async def test_public_endpoints_need_no_key_and_report_their_weight(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    weights = []
    for path in ("/api/v3/ping", "/api/v3/time", "/api/v3/depth?symbol=BTCUSDT&limit=500", "/api/v3/exchangeInfo"):
        status, _, headers = await call(http, "GET", sim.base_url + path, key=None)
        assert status == 200
        weights.append(int(headers["X-MBX-USED-WEIGHT-1M"]))
    assert weights == [1, 2, 27, 47]  # 1 + 1 + 25 + 20
    status, data, headers = await call(http, "GET", f"{sim.base_url}/sapi/v1/system/status", key=None)
    assert (status, data) == (200, {"status": 0, "msg": "normal"})
    assert headers["X-SAPI-USED-IP-WEIGHT-1M"] == "1"


async def test_bad_market_data_requests(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, data, _ = await call(http, "GET", f"{sim.base_url}/api/v3/klines?symbol=BTCUSDT&interval=7m", key=None)
    assert (status, data["code"]) == (400, -1120)
    status, data, _ = await call(http, "GET", f"{sim.base_url}/api/v3/klines?symbol=NOPE&interval=1m", key=None)
    assert (status, data["code"]) == (400, -1121)
    status, data, _ = await call(http, "GET", f"{sim.base_url}/api/v3/klines?interval=1m", key=None)
    assert (status, data["code"]) == (400, -1102)


async def test_ticker_lists_and_symbols_parameter(sim: Simulator, http: aiohttp.ClientSession) -> None:
    _, prices, _ = await call(http, "GET", f"{sim.base_url}/api/v3/ticker/price", key=None)
    assert [p["symbol"] for p in prices] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    url = f"{sim.base_url}/api/v3/ticker/bookTicker?symbols=%5B%22ETHUSDT%22%5D"
    _, books, _ = await call(http, "GET", url, key=None)
    assert [b["symbol"] for b in books] == ["ETHUSDT"]
    assert float(books[0]["bidPrice"]) < float(books[0]["askPrice"])


async def test_maintenance_answers_503_except_system_status(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_maintenance(True)
    status, data, _ = await call(http, "GET", f"{sim.base_url}/api/v3/time", key=None)
    assert (status, data) == (503, {"code": 1, "msg": "System is under maintenance."})
    _, data, _ = await call(http, "GET", f"{sim.base_url}/sapi/v1/system/status", key=None)
    assert data == {"status": 1, "msg": "system_maintenance"}


async def test_error_after_places_the_order_but_answers_5xx(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.add_fault_rule(method="POST", path="/api/v3/order", action="error_after", status=502, count=1)
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    status, _, _ = await call(
        http, "POST", f"{sim.base_url}/api/v3/order", body=signed_query(params | {"timestamp": now_ms()})
    )
    assert status == 502
    assert sim.stats()["orders_total"] == 1
    status, _, _ = await call(
        http, "POST", f"{sim.base_url}/api/v3/order", body=signed_query(params | {"timestamp": now_ms()})
    )
    assert status == 200 and sim.stats()["orders_total"] == 2


async def test_before_rules_never_reach_the_exchange(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.add_fault_rule(method="POST", path="/api/v3/order", action="error_before", status=503, count=2)
    sim.add_fault_rule(method="POST", path="/api/v3/order", action="drop_before", count=1)
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    url = f"{sim.base_url}/api/v3/order"
    for _ in range(2):
        status, _, _ = await call(http, "POST", url, body=signed_query(params | {"timestamp": now_ms()}))
        assert status == 503
    with pytest.raises(aiohttp.ClientError):
        await call(http, "POST", url, body=signed_query(params | {"timestamp": now_ms()}))
    stats = sim.stats()
    assert stats["orders_total"] == 0 and stats["pending_fault_rules"] == []
    assert stats["faults_injected"] == {"error_before": 2, "drop_before": 1}


async def test_a_hanging_request_ends_when_the_simulator_stops() -> None:
    config = SimulatorConfig(synthetic_days=1, log_requests=False)
    async with aiohttp.ClientSession() as session:
        async with run_simulator(config) as simulator:
            simulator.add_fault_rule(method="GET", path="/api/v3/time", action="hang_before", hang_ms=60_000)
            request = asyncio.ensure_future(session.get(f"{simulator.base_url}/api/v3/time"))
            await asyncio.sleep(0.2)
            assert not request.done()
        # leaving the block stopped the simulator: the hang was cut short instead of lasting a minute
        response = await asyncio.wait_for(request, timeout=5)
        assert response.status == 504
        response.release()


async def test_control_api_over_http(sim: Simulator, http: aiohttp.ClientSession) -> None:
    base = f"{sim.base_url}/_sim"
    async with http.post(f"{base}/faults", json={"latency_ms": 5, "rules": [{"action": "hang_after"}]}) as r:
        body = await r.json()
        assert r.status == 200 and body["faults"]["latency_ms"] == 5 and len(body["rules"]) == 1
    async with http.post(f"{base}/faults", json={"error_rate": 2}) as r:
        assert r.status == 400  # validated: a probability
    async with http.delete(f"{base}/faults") as r:
        assert (await r.json())["rules"] == []
    async with http.post(f"{base}/keys", json={"key": "k2", "secret": "s2", "can_trade": False}) as r:
        keys = (await r.json())["keys"]
        assert {k["key"] for k in keys} == {KEY, "k2"} and all("secret" not in k for k in keys)
    async with http.post(f"{base}/clock", json={"speed": 0, "replay_time": 1_704_153_600_000}) as r:
        clock = await r.json()
        assert clock["speed"] == 0 and clock["replay_time"] == 1_704_153_600_000
    async with http.post(f"{base}/balances", json={"balances": {"USDT": "5"}}) as r:
        assert (await r.json())["balances"]["USDT"] == "5"
    _, data, _ = await call(http, "GET", f"{sim.base_url}/api/v3/account?{signed_query({'timestamp': now_ms()})}")
    assert {b["asset"]: b["free"] for b in data["balances"]}["USDT"] == "5.00000000"
    async with http.get(f"{base}/stats") as r:
        stats = await r.json()
        assert stats["requests_by_endpoint"] == {"GET /api/v3/account": 1}
        assert stats["clock"]["replay_time"] == 1_704_153_600_000
    async with http.post(f"{base}/reset") as r:
        assert r.status == 200
    async with http.get(f"{base}/stats") as r:
        stats = await r.json()
        assert stats["requests_total"] == 0 and stats["clock"]["speed"] == 1.0
    _, data, _ = await call(http, "GET", f"{sim.base_url}/api/v3/account?{signed_query({'timestamp': now_ms()})}")
    assert {b["asset"]: b["free"] for b in data["balances"]}["USDT"] == "10000.00000000"


def test_threaded_simulator_serves_synchronous_callers() -> None:
    with start_simulator_thread(SimulatorConfig(synthetic_days=1, log_requests=False)) as sim:
        with urllib.request.urlopen(f"{sim.base_url}/api/v3/ping") as response:
            assert response.status == 200
        sim.set_faults(maintenance=True)
        assert sim.stats()["maintenance"] is True
        assert sim.stats()["requests_by_endpoint"] == {"GET /api/v3/ping": 1}


async def test_the_orders_of_an_account_with_their_commission(sim: Simulator, http: aiohttp.ClientSession) -> None:
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "timestamp": now_ms()}
    params["newClientOrderId"] = "listed-1"
    status, _, _ = await call(http, "POST", f"{sim.base_url}/api/v3/order", body=signed_query(params))
    assert status == 200
    status, orders, _ = await call(http, "GET", f"{sim.base_url}/_sim/orders?account=main", key=None)
    assert status == 200
    [order] = orders
    assert (order["clientOrderId"], order["status"], order["executedQty"]) == ("listed-1", "FILLED", "0.01000000")
    assert order["commission"] == {"BTC": "0.00001000"}
    _, others, _ = await call(http, "GET", f"{sim.base_url}/_sim/orders?account=nobody", key=None)
    assert others == []

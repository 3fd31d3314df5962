"""The simulator against Binance's documented behaviour, over HTTP: the unfilled order count, parameters in the
query and the body, timing, kline intervals, number formats, the order book orders fill against, and one clock.

The rules quoted are from Binance's spot API documentation (rest-api.md: "General Information on Endpoints",
"Timing security", "Unfilled Order Count"; faqs/order_count_decrement.md; filters.md).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from pydantic import SecretStr

from traiding_simulator import ApiKeyConfig, SimulatorConfig, run_simulator
from traiding_simulator.auth import sign
from traiding_simulator.cli import _announce
from traiding_simulator.server import Simulator

KEY, SECRET = "rules-key", "rules-secret"
DAY_MS, MINUTE_MS = 86_400_000, 60_000
PRICE = re.compile(r"^-?[0-9]+\.[0-9]{8}$")  # the symbol's precision: 8 decimals


def config(**changes: Any) -> SimulatorConfig:
    fields: dict[str, Any] = {"keys": [ApiKeyConfig(key=KEY, secret=SecretStr(SECRET))], "log_requests": False}
    return SimulatorConfig(**{"synthetic_days": 3, **fields, **changes})


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(config()) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def signed(params: dict[str, Any]) -> str:
    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    return f"{query}&signature={sign(SECRET, query)}"


async def call(
    http: aiohttp.ClientSession, method: str, url: str, *, body: str | None = None
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    headers = {"X-MBX-APIKEY": KEY}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with http.request(method, url, data=body, headers=headers) as response:
        return response.status, json.loads(await response.text()), response.headers


async def order(http: aiohttp.ClientSession, sim: Simulator, **params: Any) -> tuple[int, Any, CIMultiDictProxy[str]]:
    return await call(http, "POST", f"{sim.base_url}/api/v3/order", body=signed({"symbol": "BTCUSDT", **params}))


async def order_counts(http: aiohttp.ClientSession, sim: Simulator) -> dict[str, int]:
    _, limits, _ = await call(http, "GET", f"{sim.base_url}/api/v3/rateLimit/order?{signed({})}")
    return {f"{r['intervalNum']}{r['interval'][0]}": r["count"] for r in limits}


# --- the unfilled order count -----------------------------------------------------------------------------------


async def test_only_accepted_orders_count_and_carry_the_count_headers(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_clock(speed=0)
    status, _, headers = await order(
        http, sim, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="1000"
    )
    assert status == 400  # NOTIONAL: 1 USDT is below the minimum
    assert "X-MBX-ORDER-COUNT-10S" not in headers and "X-MBX-ORDER-COUNT-1D" not in headers
    assert await order_counts(http, sim) == {"10S": 0, "1D": 0}
    status, _, headers = await order(
        http, sim, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="10000"
    )
    assert status == 200 and (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1D"]) == ("1", "1")
    assert await order_counts(http, sim) == {"10S": 1, "1D": 1}  # a resting, unfilled order counts


async def test_an_order_that_fills_comes_off_the_count(sim: Simulator, http: aiohttp.ClientSession) -> None:
    for expected in (1, 2):  # two resting orders
        _, _, headers = await order(
            http, sim, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="10000"
        )
        assert headers["X-MBX-ORDER-COUNT-10S"] == str(expected)
    status, placed, headers = await order(http, sim, side="BUY", type="MARKET", quantity="0.001")
    assert status == 200 and placed["status"] == "FILLED"
    assert headers["X-MBX-ORDER-COUNT-10S"] == "3"  # counted as placed, then taken off by its first fill
    assert await order_counts(http, sim) == {"10S": 2, "1D": 2}


async def test_at_the_limit_a_new_order_gets_429_minus_1015_with_retry_after(http: aiohttp.ClientSession) -> None:
    async with run_simulator(config(order_limit_10s=2, speed=0)) as sim:
        for _ in range(2):
            status, _, _ = await order(
                http, sim, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="10000"
            )
            assert status == 200
        status, error, headers = await order(http, sim, side="BUY", type="MARKET", quantity="0.001")
        assert (status, error["code"]) == (429, -1015)
        assert error["msg"] == "Too many new orders; current limit is 2 orders per 10 SECOND."
        assert 1 <= int(headers["Retry-After"]) <= 10
        assert "X-MBX-ORDER-COUNT-10S" not in headers
        assert sim.stats()["orders_total"] == 2  # refused before the matching engine


async def test_the_strict_count_keeps_filled_and_refused_orders_counted(http: aiohttp.ClientSession) -> None:
    async with run_simulator(config(order_counting="all")) as sim:
        await order(http, sim, side="BUY", type="MARKET", quantity="0.001")
        await order(http, sim, side="BUY", type="MARKET", quantity="1000")  # refused: more than the balance
        assert await order_counts(http, sim) == {"10S": 2, "1D": 2}


# --- parameters and timing ----------------------------------------------------------------------------------------


async def test_a_parameter_in_both_the_query_and_the_body_takes_the_querys_value(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    query = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.002"
    body = f"symbol=ETHUSDT&quantity=0.5&timestamp={int(time.time() * 1000)}"
    url = f"{sim.base_url}/api/v3/order?{query}&signature={sign(SECRET, query + body)}"
    status, placed, _ = await call(http, "POST", url, body=body)
    assert status == 200
    assert (placed["symbol"], placed["origQty"]) == ("BTCUSDT", "0.00200000")


async def test_microsecond_timestamps_and_a_decimal_recv_window(sim: Simulator, http: aiohttp.ClientSession) -> None:
    query = urlencode({"timestamp": int(time.time() * 1_000_000), "recvWindow": "6000.346"})
    status, account, _ = await call(
        http, "GET", f"{sim.base_url}/api/v3/account?{query}&signature={sign(SECRET, query)}"
    )
    assert status == 200 and account["accountType"] == "SPOT"
    stale = urlencode({"timestamp": int(time.time() * 1_000_000) - 7_000_000, "recvWindow": "6000.346"})
    status, error, _ = await call(http, "GET", f"{sim.base_url}/api/v3/account?{stale}&signature={sign(SECRET, stale)}")
    assert (status, error["code"]) == (400, -1021)


# --- market data ---------------------------------------------------------------------------------------------------


async def test_one_second_and_one_month_klines(sim: Simulator, http: aiohttp.ClientSession) -> None:
    now = sim.replay_now()
    async with http.get(f"{sim.base_url}/api/v3/klines?symbol=BTCUSDT&interval=1s&limit=5") as r:
        seconds = await r.json()
    assert len(seconds) == 5 and all(b[0] - a[0] == 1000 for a, b in itertools.pairwise(seconds))
    assert seconds[-1][0] <= now < seconds[-1][0] + 2000
    start_us = (now - 10 * MINUTE_MS) * 1000  # microseconds, as Binance also takes them
    async with http.get(f"{sim.base_url}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={start_us}&limit=2") as r:
        minutes = await r.json()
    assert 0 <= minutes[0][0] - (now - 10 * MINUTE_MS) < MINUTE_MS  # the first minute at or after startTime
    async with http.get(f"{sim.base_url}/api/v3/klines?symbol=BTCUSDT&interval=1M") as r:
        months = await r.json()
    assert months and time.gmtime(months[-1][0] / 1000).tm_mday == 1  # opens on the first of a month
    async with http.get(f"{sim.base_url}/api/v3/klines?symbol=BTCUSDT&interval=2M") as r:
        assert (r.status, (await r.json())["code"]) == (400, -1120)


async def test_prices_have_the_symbols_precision_and_lie_on_its_tick(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    tick = Decimal("0.01")  # BTCUSDT

    async def get(path: str) -> Any:
        async with http.get(f"{sim.base_url}{path}") as r:
            return await r.json()

    ticker = await get("/api/v3/ticker/24hr?symbol=BTCUSDT")
    book = await get("/api/v3/depth?symbol=BTCUSDT&limit=5")
    kline = (await get("/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1"))[0]
    prices = [ticker[k] for k in ("openPrice", "highPrice", "lowPrice", "lastPrice", "bidPrice", "askPrice")]
    prices += [(await get("/api/v3/ticker/price?symbol=BTCUSDT"))["price"]]
    prices += [level[0] for level in book["bids"] + book["asks"]] + kline[1:5]
    assert all(PRICE.match(p) and Decimal(p) % tick == 0 for p in prices), prices
    average = await get("/api/v3/avgPrice?symbol=BTCUSDT")
    assert average["mins"] == 5 and PRICE.match(average["price"])


async def test_orders_fill_against_the_book_the_depth_endpoint_shows(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_clock(speed=0)
    async with http.get(f"{sim.base_url}/api/v3/depth?symbol=BTCUSDT&limit=10") as r:
        book = await r.json()
    asks = [(Decimal(p), Decimal(q)) for p, q in book["asks"]]
    quantity = asks[0][1] + asks[1][1] + asks[2][1]
    status, placed, _ = await order(http, sim, side="BUY", type="MARKET", quantity=str(quantity))
    assert status == 200 and placed["status"] == "FILLED"
    assert [(Decimal(f["price"]), Decimal(f["qty"])) for f in placed["fills"]] == asks[:3]
    assert placed["fills"][0]["tradeId"] < placed["fills"][2]["tradeId"]


async def test_without_new_order_resp_type_market_and_limit_orders_answer_full_and_others_ack(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    btc = sim.state.market.by_id["BTCUSDT"]
    price = Decimal(repr(btc.price_at(sim.replay_now())))

    def below(fraction: str) -> str:  # a price under the market, on the tick
        return str((price * Decimal(fraction)).quantize(Decimal("0.01")))

    _, market, _ = await order(http, sim, side="BUY", type="MARKET", quantity="0.001")
    _, limit, _ = await order(
        http, sim, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=below("0.9")
    )
    _, maker, _ = await order(http, sim, side="BUY", type="LIMIT_MAKER", quantity="0.001", price=below("0.8"))
    stop = below("0.7")
    _, stop_order, _ = await order(
        http, sim, side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.001", price=stop, stopPrice=stop
    )
    assert "fills" in market and "fills" in limit  # FULL
    ack = {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    assert set(maker) == ack and set(stop_order) == ack
    _, asked, _ = await order(http, sim, side="BUY", type="MARKET", quantity="0.001", newOrderRespType="RESULT")
    assert "status" in asked and "fills" not in asked  # asked for: as asked


# --- one clock -----------------------------------------------------------------------------------------------------


async def test_server_time_candles_orders_and_trades_run_on_one_clock(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    before = int(time.time() * 1000)
    async with http.get(f"{sim.base_url}/api/v3/time") as r:
        server = (await r.json())["serverTime"]
    async with http.get(f"{sim.base_url}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1") as r:
        (forming,) = await r.json()
    _, placed, _ = await order(http, sim, side="BUY", type="MARKET", quantity="0.001")
    _, trades, _ = await call(http, "GET", f"{sim.base_url}/api/v3/myTrades?{signed({'symbol': 'BTCUSDT'})}")
    after = int(time.time() * 1000)
    assert before - 5 <= server <= after + 5
    assert forming[0] <= server <= forming[6]  # the candle forming at the server's time is the newest one
    assert before - 5 <= placed["transactTime"] <= after + 5
    assert before - 5 <= trades[0]["time"] <= after + 5
    clock = sim.state.clock_view()
    assert clock["shift_ms"] % DAY_MS == 0 and clock["shift_ms"] > 0  # the synthetic 2024 market, moved to today


async def test_a_start_pinned_in_the_data_keeps_its_time_of_day_on_todays_date(
    http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    async with run_simulator(config(synthetic_days=3, align_to_wall_clock=False)) as data:
        pinned = data.state.market.first_ms + DAY_MS + 12 * 3_600_000 + 5 * MINUTE_MS
    async with run_simulator(config(synthetic_days=3, start=pinned, speed=0)) as sim:
        clock = sim.state.clock_view()
        assert clock["replay_time"] - clock["shift_ms"] == pinned  # exactly the window asked for
        assert 0 <= int(time.time() * 1000) - clock["replay_time"] < DAY_MS
        _announce(sim)  # `traiding simulator` names both: where the replay is today, and where in the data
        replayed, in_data = (
            datetime.fromtimestamp(ms // 1000, UTC).isoformat() for ms in (clock["replay_time"], pinned)
        )
        assert f"replay starts at {replayed} ({in_data} in the data, its dates moved " in capsys.readouterr().out
        async with http.get(f"{sim.base_url}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=1") as r:
            (forming,) = await r.json()
        assert forming[0] == clock["replay_time"]  # held at the start: it opens there

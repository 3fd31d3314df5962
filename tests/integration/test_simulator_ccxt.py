"""The real ccxt binance client, unmodified, against the simulator: URLs pointed at loopback, nothing else."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import pytest
from pydantic import SecretStr

from traiding.domain.candles import load_candles
from traiding_simulator import ApiKeyConfig, DataSource, SimulatorConfig, ccxt_config, client_urls, run_simulator
from traiding_simulator.server import Simulator

KEY, SECRET = "test-key", "test-secret"
DEC_20_2020 = 1_608_422_400_000  # 2020-12-20T00:00Z: the 11 days after it hold two of BTC_USDT-5m's gaps
FIVE_MIN = 300_000


def sim_config(data_dir: Path | None, **overrides: Any) -> SimulatorConfig:
    data = [DataSource(path=data_dir / "BTC_USDT-5m.json")] if data_dir else []
    fields: dict[str, Any] = {
        "data": data,
        "keys": [
            ApiKeyConfig(key=KEY, secret=SecretStr(SECRET)),
            ApiKeyConfig(key="reader", secret=SecretStr("reader-secret"), can_trade=False),
        ],
        "log_requests": False,
        # these tests compare what ccxt gets with the file's own candles, at the data's own dates
        "align_to_wall_clock": False,
        **overrides,
    }
    return SimulatorConfig(**fields)


def client(sim: Simulator, key: str = KEY, secret: str = SECRET, **extra: Any) -> Any:
    return ccxt.binance(ccxt_config(sim.base_url, key, secret) | {"enableRateLimit": False} | extra)


@pytest.fixture
async def sim(shared_data: Path) -> AsyncIterator[Simulator]:
    async with run_simulator(sim_config(shared_data)) as simulator:
        yield simulator


@pytest.fixture
async def exchange(sim: Simulator) -> AsyncIterator[Any]:
    ex = client(sim)
    try:
        yield ex
    finally:
        await ex.close()


async def test_load_markets_is_spot_only_and_parses_the_filters(sim: Simulator, exchange: Any) -> None:
    markets = await exchange.load_markets()
    assert list(markets) == ["BTC/USDT"]
    btc = markets["BTC/USDT"]
    assert btc["spot"] and btc["active"] and btc["id"] == "BTCUSDT"
    assert btc["limits"]["amount"]["min"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 5.0
    assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001
    assert sim.stats()["requests_by_endpoint"] == {"GET /api/v3/exchangeInfo": 1}


async def test_default_ccxt_options_also_load(sim: Simulator) -> None:
    """Without the spot-only options ccxt asks fapi/dapi and sapi too; those answer empty, not 404."""
    ex = ccxt.binance({"apiKey": KEY, "secret": SECRET, "urls": {"api": client_urls(sim.base_url)}})
    try:
        markets = await ex.load_markets()
    finally:
        await ex.close()
    assert list(markets) == ["BTC/USDT"]
    assert "GET /fapi/v1/exchangeInfo" in sim.stats()["requests_by_endpoint"]


async def test_server_time_is_the_wall_clock_and_status_is_ok(sim: Simulator, exchange: Any) -> None:
    before = int(time.time() * 1000)
    server = await exchange.fetch_time()
    after = int(time.time() * 1000)
    assert before <= server <= after
    assert (await exchange.fetch_status())["status"] == "ok"


async def test_paginated_ohlcv_returns_exactly_the_stored_candles_across_gaps(exchange: Any, shared_data: Path) -> None:
    since, until = DEC_20_2020, DEC_20_2020 + 11 * 86_400_000
    stored = load_candles(shared_data / "BTC_USDT-5m.json")
    mask = (stored.time >= since) & (stored.time <= until)
    expected = [
        [int(t), o, h, lo, c, v]
        for t, o, h, lo, c, v in zip(
            stored.time[mask].tolist(),
            stored.open[mask].tolist(),
            stored.high[mask].tolist(),
            stored.low[mask].tolist(),
            stored.close[mask].tolist(),
            stored.volume[mask].tolist(),
            strict=True,
        )
    ]
    gaps = sum(1 for a, b in itertools.pairwise(expected) if b[0] - a[0] > FIVE_MIN)
    assert gaps == 2 and len(expected) < 11 * 288  # the range really has gaps

    paginated = await exchange.fetch_ohlcv("BTC/USDT", "5m", since, params={"paginate": True, "until": until})
    assert paginated == expected

    manual: list[list[Any]] = []
    cursor = since
    while True:  # the loop an adapter writes: since = last open time + 1
        page = await exchange.fetch_ohlcv("BTC/USDT", "5m", cursor, 1000, params={"until": until})
        if not page:
            break
        manual.extend(page)
        cursor = page[-1][0] + 1
    assert manual == expected


async def test_ohlcv_has_no_look_ahead_and_the_last_candle_is_forming(sim: Simulator, exchange: Any) -> None:
    sim.set_clock(speed=0.0)  # pause the replay so both requests see the same "now"
    now = sim.replay_now()
    candles = await exchange.fetch_ohlcv("BTC/USDT", "5m", limit=3)
    assert len(candles) == 3
    assert candles[-1][0] <= now < candles[-1][0] + FIVE_MIN
    hourly = await exchange.fetch_ohlcv("BTC/USDT", "1h", limit=2)
    assert hourly[-1][0] <= now < hourly[-1][0] + 3_600_000
    assert hourly[-1][4] == candles[-1][4]  # both forming candles close at the current price


async def test_ticker_and_order_book_derive_from_the_replay_price(sim: Simulator, exchange: Any) -> None:
    ticker = await exchange.fetch_ticker("BTC/USDT")
    assert ticker["bid"] < ticker["ask"]
    assert ticker["low"] <= ticker["last"] <= ticker["high"]
    assert abs(ticker["timestamp"] - sim.replay_now()) < 60_000  # market timestamps are replay time
    book = await exchange.fetch_order_book("BTC/USDT", 20)
    assert len(book["bids"]) == 20 and len(book["asks"]) == 20
    assert book["bids"][0][0] < book["asks"][0][0]
    assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)


async def test_balance_orders_and_trades_round_trip(exchange: Any) -> None:
    balance = await exchange.fetch_balance()
    assert balance["USDT"]["free"] == 10_000 and balance["BTC"]["free"] == 0.5

    bought = await exchange.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "cid-1"})
    assert bought["status"] == "closed" and bought["filled"] == 0.01 and bought["clientOrderId"] == "cid-1"
    assert bought["fee"]["currency"] == "BTC" and bought["fee"]["cost"] == pytest.approx(0.00001)

    price = round(bought["average"] * 0.5, 2)
    resting = await exchange.create_order("BTC/USDT", "limit", "buy", 0.01, price)
    assert resting["status"] == "open"
    fetched = await exchange.fetch_order(resting["id"], "BTC/USDT")
    assert fetched["status"] == "open" and fetched["price"] == price
    by_client_id = await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "cid-1"})
    assert by_client_id["id"] == bought["id"]
    assert [o["id"] for o in await exchange.fetch_open_orders("BTC/USDT")] == [resting["id"]]

    balance = await exchange.fetch_balance()
    assert balance["USDT"]["used"] == pytest.approx(0.01 * price)
    assert balance["BTC"]["free"] == pytest.approx(0.5 + 0.01 - 0.00001)

    canceled = await exchange.cancel_order(resting["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    assert await exchange.fetch_open_orders("BTC/USDT") == []
    trades = await exchange.fetch_my_trades("BTC/USDT")
    assert [t["order"] for t in trades] == [bought["id"]]
    assert {o["id"] for o in await exchange.fetch_orders("BTC/USDT")} == {bought["id"], resting["id"]}
    with pytest.raises(ccxt.OrderNotFound):
        await exchange.cancel_order(resting["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        await exchange.fetch_order("424242", "BTC/USDT")


async def test_a_resting_limit_fills_when_the_replay_reaches_it(sim: Simulator, exchange: Any) -> None:
    ticker = await exchange.fetch_ticker("BTC/USDT")
    sell = await exchange.create_order("BTC/USDT", "limit", "sell", 0.01, round(ticker["last"] * 1.001, 2))
    sim.set_clock(speed=86_400.0)  # a market day per second: the price moves through a wide range
    for _ in range(100):
        order = await exchange.fetch_order(sell["id"], "BTC/USDT")
        if order["status"] == "closed":
            break
        await asyncio.sleep(0.05)
    assert order["status"] == "closed" and order["price"] == sell["price"]
    (trade,) = await exchange.fetch_my_trades("BTC/USDT")
    assert trade["takerOrMaker"] == "maker"


async def test_a_wrong_secret_is_an_authentication_error(sim: Simulator) -> None:
    ex = client(sim, secret="not-the-secret")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await ex.fetch_balance()
    finally:
        await ex.close()
    ex = client(sim, key="unknown-key")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await ex.fetch_balance()
    finally:
        await ex.close()


async def test_a_read_only_key_cannot_trade(sim: Simulator) -> None:
    ex = client(sim, key="reader", secret="reader-secret")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await ex.create_order("BTC/USDT", "market", "buy", 0.001)
        assert (await ex.fetch_balance())["USDT"]["free"] == 10_000
        # ccxt quirk: after one successful private call it raises -2015 as DDoSProtection (a temporary ban)
        with pytest.raises(ccxt.DDoSProtection, match="-2015"):
            await ex.create_order("BTC/USDT", "market", "buy", 0.001)
    finally:
        await ex.close()


async def test_a_skewed_clock_is_invalid_nonce(sim: Simulator, exchange: Any) -> None:
    exchange.options["timeDifference"] = -5_000  # the client's timestamps run 5 s ahead of the exchange
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await exchange.fetch_balance()
    exchange.options["timeDifference"] = 0
    sim.set_clock(time_offset_ms=-20_000)  # now the exchange clock lags 20 s: past the recvWindow of 10 s
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await exchange.fetch_balance()
    await exchange.load_time_difference()  # ccxt's own fix: measure the offset and sign with it
    assert (await exchange.fetch_balance())["USDT"]["free"] == 10_000


async def test_hammering_gets_429_and_then_418(shared_data: Path) -> None:
    config = sim_config(shared_data, weight_limit=30, ban_after_rejections=2, ban_ms=60_000)
    async with run_simulator(config) as simulator:
        ex = client(simulator)
        seen: list[int] = []
        try:
            for _ in range(200):
                try:
                    await ex.fetch_ticker("BTC/USDT")  # weight 2; the markets load costs 20
                except ccxt.DDoSProtection as exc:
                    seen.append(418 if " 418 " in str(exc) else 429)
                    if seen[-1] == 418:
                        break
        finally:
            await ex.close()
        stats = simulator.stats()
    assert 429 in seen and seen[-1] == 418
    assert seen.index(418) > seen.index(429)
    assert stats["served_429"] >= 1 and stats["served_418"] >= 1


async def test_a_client_order_id_is_refused_while_its_order_is_open_and_free_again_after(
    sim: Simulator, exchange: Any
) -> None:
    """Binance's rule, the simulator's default: a filled order's id may be sent again, and that is a new order."""
    await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 10_000, params={"clientOrderId": "run-7-0"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 10_000, params={"clientOrderId": "run-7-0"})
    await exchange.cancel_order(None, "BTC/USDT", {"origClientOrderId": "run-7-0"})
    await exchange.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "run-7-0"})
    await exchange.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "run-7-0"})
    assert sim.stats()["orders_by_client_order_id"]["run-7-0"] == 3


async def test_the_strict_mode_refuses_any_reused_client_order_id(shared_data: Path) -> None:
    async with run_simulator(sim_config(shared_data, duplicate_client_order_id="any")) as strict:
        ex = client(strict)
        try:
            await ex.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "run-8-0"})
            with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
                await ex.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "run-8-0"})
        finally:
            await ex.close()
        assert strict.stats()["orders_by_client_order_id"]["run-8-0"] == 1


async def test_filter_failures_and_insufficient_funds(exchange: Any) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await exchange.create_order("BTC/USDT", "limit", "buy", 9001, 30_000)
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 2_000_000)
    # -1013 "Filter failure: NOTIONAL" is ccxt's BadRequest (binance maps the code, not the filter)
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        await exchange.create_order("BTC/USDT", "limit", "buy", 0.0001, 30_000)
    with pytest.raises(ccxt.InsufficientFunds):
        await exchange.create_order("BTC/USDT", "market", "buy", 1.0)
    with pytest.raises(ccxt.InsufficientFunds):
        await exchange.create_order("BTC/USDT", "limit", "sell", 0.6, 100_000)


async def test_maintenance_mode(sim: Simulator, exchange: Any) -> None:
    sim.set_maintenance(True)
    assert (await exchange.fetch_status())["status"] == "maintenance"
    with pytest.raises(ccxt.OnMaintenance):
        await exchange.fetch_ticker("BTC/USDT")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await exchange.fetch_balance()
    sim.set_maintenance(False)
    assert (await exchange.fetch_status())["status"] == "ok"
    assert (await exchange.fetch_ticker("BTC/USDT"))["last"] > 0


async def test_errors_injected_at_a_rate_are_exchange_not_available(sim: Simulator, exchange: Any) -> None:
    await exchange.load_markets()
    sim.set_faults(error_rate=0.5, seed=11)
    failures = 0
    for _ in range(40):
        try:
            await exchange.fetch_time()
        except ccxt.ExchangeNotAvailable:
            failures += 1
    assert 5 < failures < 35
    assert sim.stats()["faults_injected"]["error"] == failures
    sim.set_faults(error_rate=0.0)
    assert await exchange.fetch_time() > 0


async def test_an_order_accepted_then_timed_out_exists_exactly_once(sim: Simulator, exchange: Any) -> None:
    """The case idempotent order placement must survive: the exchange took the order, the client timed out."""
    await exchange.load_markets()
    exchange.timeout = 500  # ms
    sim.add_fault_rule(method="POST", path="/api/v3/order", action="hang_after", hang_ms=5_000)
    with pytest.raises(ccxt.RequestTimeout):
        await exchange.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "once-1"})
    placed = await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "once-1"})
    assert placed["status"] == "closed"
    assert sim.stats()["orders_by_client_order_id"]["once-1"] == 1
    # As on Binance, the id of a filled order is free again: a blind retry buys a second time. This is why an
    # order of unknown outcome is looked up by its id, never sent again.
    await exchange.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "once-1"})
    assert sim.stats()["orders_by_client_order_id"]["once-1"] == 2


async def test_an_order_accepted_then_dropped_is_a_network_error(sim: Simulator, exchange: Any) -> None:
    await exchange.load_markets()
    sim.add_fault_rule(method="POST", path="/api/v3/order", action="drop_after")
    with pytest.raises(ccxt.NetworkError):
        await exchange.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "drop-1"})
    assert (await exchange.fetch_order(None, "BTC/USDT", {"clientOrderId": "drop-1"}))["filled"] == 0.001
    # the rule was used once: the next order goes through normally
    assert (await exchange.create_order("BTC/USDT", "market", "buy", 0.001))["status"] == "closed"


async def test_synthetic_market_without_files() -> None:
    async with run_simulator(sim_config(None, synthetic_days=3)) as simulator:
        ex = client(simulator)
        try:
            markets = await ex.load_markets()
            candles = await ex.fetch_ohlcv("ETH/USDT", "1m", limit=10)
        finally:
            await ex.close()
    assert set(markets) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
    assert len(candles) == 10 and all(b[0] - a[0] == 60_000 for a, b in itertools.pairwise(candles))

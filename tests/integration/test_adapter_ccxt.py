"""The exchange layer with the REAL ccxt client against the Binance-compatible simulator.

Every assertion about what reached the exchange reads the simulator's own stats (requests, weight, 429/418,
orders per client order id), not our side's view.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import ccxt.async_support as ccxt
import numpy as np
import pytest

from traiding.domain.candles import load_candles
from traiding_adapters import (
    AuthenticationFailed,
    CcxtExchange,
    CircuitOpen,
    ClockSkewError,
    Credentials,
    ExchangeHub,
    ExchangeMaintenance,
    ExchangeSettings,
    ExchangeUnavailable,
    OrderRequest,
    RetryPolicy,
    client_order_id,
)
from traiding_simulator import ApiKeyConfig, DataSource, SimulatorConfig, ccxt_config, client_urls, run_simulator
from traiding_simulator.server import Simulator

KEY = "test-key-0001"
SECRET = "test-secret-0001-abcdefghijklmnop"
CREDENTIALS = Credentials(KEY, SECRET, source="Secret binance-keys")
FAST = ExchangeSettings(
    timeout_ms=1500,
    retry=RetryPolicy(attempts=4, initial_wait_s=0.02, max_wait_s=0.2, jitter_s=0.02, max_total_s=10),
    order_lookup=RetryPolicy(attempts=6, initial_wait_s=0.05, max_wait_s=0.5, jitter_s=0.02, max_total_s=10),
    order_settle_s=0.05,
    failure_threshold=5,
    cool_down_s=60,
)


def config(**changes: object) -> SimulatorConfig:
    base = SimulatorConfig(
        keys=[ApiKeyConfig(key=KEY, secret=SECRET)],
        synthetic_days=2,
        log_requests=False,
    )
    return base.model_copy(update=changes)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(config()) as simulator:
        yield simulator


@pytest.fixture
async def hub() -> AsyncIterator[ExchangeHub]:
    registry = ExchangeHub(FAST)
    yield registry
    await registry.close()


def connect(hub: ExchangeHub, sim: Simulator, credentials: Credentials | None = CREDENTIALS) -> CcxtExchange:
    return hub.get("binance", credentials, urls=client_urls(sim.base_url))


async def test_paginated_ohlcv_returns_exactly_the_stored_candles_across_real_gaps(shared_data: Path) -> None:
    path = shared_data / "BTC_USDT-5m.json"
    stored = load_candles(path)
    gaps = int(np.count_nonzero(np.diff(stored.time) != 300_000))
    assert gaps == 6, "the data file is expected to hold its 6 real gaps"
    cfg = config(  # the file's own dates, to compare with it
        data=[DataSource(symbol="BTC/USDT", path=path)], start_fraction=1.0, speed=0.0, align_to_wall_clock=False
    )
    async with run_simulator(cfg) as simulator:
        hub = ExchangeHub(FAST)
        exchange = connect(hub, simulator, None)
        try:
            since, until = int(stored.time[0]), int(stored.time[-1]) + 300_000
            candles = await exchange.fetch_ohlcv("BTC/USDT", "5m", since, until)
            klines_calls = simulator.stats()["requests_by_endpoint"]["GET /api/v3/klines"]
            # a window that starts and ends inside gaps, across page boundaries
            inner = await exchange.fetch_ohlcv("BTC/USDT", "5m", since + 1000 * 300_000 + 1, until - 7 * 86_400_000)
        finally:
            await exchange.close()
            await hub.close()
    assert np.array_equal(candles.time, stored.time)
    for column in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(candles, column), getattr(stored, column)), column
    # one call per full page of 1000 plus the final empty one: no page fetched twice, no loop
    assert klines_calls <= len(stored) // 1000 + 3
    mask = (stored.time >= since + 1000 * 300_000 + 1) & (stored.time < until - 7 * 86_400_000)
    assert np.array_equal(inner.time, stored.time[mask])


async def test_wrong_secret_is_authentication_failed_without_the_secret(sim: Simulator, hub: ExchangeHub) -> None:
    wrong = Credentials(KEY, "wrong-secret-value-123456", source="Secret binance-keys")
    exchange = connect(hub, sim, wrong)
    try:
        with pytest.raises(AuthenticationFailed) as info:
            await exchange.fetch_balances()
    finally:
        await exchange.close()
    message = str(info.value)
    assert "API key rejected by binance" in message
    assert "check the key and secret in Secret binance-keys" in message
    assert "wrong-secret-value-123456" not in message
    assert SECRET not in message
    assert sim.stats()["requests_by_endpoint"]["GET /api/v3/account"] == 1, "a rejected key is never retried"


async def test_key_permissions_report_trading_and_withdrawal(sim: Simulator, hub: ExchangeHub) -> None:
    sim.add_key(
        ApiKeyConfig(key="withdrawer", secret="withdrawer-secret-0123456789", can_withdraw=True, can_trade=False)
    )
    good = connect(hub, sim)
    risky = connect(hub, sim, Credentials("withdrawer", "withdrawer-secret-0123456789"))
    try:
        assert (await good.key_permissions()).model_dump(exclude={"source"}) == {
            "can_read": True,
            "can_trade": True,
            "can_withdraw": False,
        }
        permissions = await risky.key_permissions()
        assert permissions.can_withdraw is True
        assert permissions.can_trade is False
    finally:
        await good.close()
        await risky.close()


async def test_skewed_clock_is_detected_and_corrected(sim: Simulator, hub: ExchangeHub) -> None:
    sim.set_clock(time_offset_ms=-30_000)  # the exchange is 30 s behind: our clock is 30 s ahead
    # an uncorrected ccxt client is rejected with -1021
    raw = ccxt.binance(ccxt_config(sim.base_url, KEY, SECRET))
    try:
        with pytest.raises(ccxt.InvalidNonce):
            await raw.fetch_balance()
    finally:
        await raw.close()

    exchange = connect(hub, sim)
    try:
        with pytest.raises(ClockSkewError, match=r"ahead of binance \(allowed: 1000 ms\).*NTP"):
            await exchange.measure_clock(max_skew_ms=1000)
        offset = await exchange.measure_clock()
        assert abs(offset.offset_ms + 30_000) < 1000
        balances = await exchange.fetch_balances()  # signed with the corrected time
        assert balances["USDT"].total > 0
        health = await exchange.health()
        assert health.clock_offset_ms is not None and abs(health.clock_offset_ms + 30_000) < 1000

        # the exchange's clock jumps while we run: the -1021 re-measures once and the call succeeds
        sim.set_clock(time_offset_ms=45_000)
        assert (await exchange.fetch_balances())["USDT"].total > 0
        assert exchange.connection.clock_offset is not None
        assert abs(exchange.connection.clock_offset.offset_ms - 45_000) < 1000
    finally:
        await exchange.close()
    assert sim.stats()["errors_by_code"].get("-1021", 0) == 2  # the raw client's and the jump's


async def test_twenty_concurrent_runs_on_one_key_never_get_429_or_418() -> None:
    # a low limit and a short window on both sides so the test runs in seconds
    cfg = config(weight_limit=120, weight_window_ms=1000, ban_after_rejections=0)
    settings = replace(FAST, weight_limit=120, weight_window_s=1.0)
    async with run_simulator(cfg) as simulator:
        hub = ExchangeHub(settings)
        runs = [connect(hub, simulator) for _ in range(20)]
        assert hub.open_connections() == 1, "one ccxt instance for one key"
        since = simulator.replay_now() - 3 * 3600_000

        async def run(exchange: CcxtExchange) -> None:
            for _ in range(2):
                await exchange.fetch_ticker("BTC/USDT")  # weight 2
                await exchange.fetch_order_book("BTC/USDT", 50)  # weight 5
                await exchange.fetch_ohlcv("BTC/USDT", "1m", since, since + 60 * 60_000)  # weight 2 + 2
            await exchange.fetch_balances()  # weight 20

        try:
            await asyncio.gather(*(run(exchange) for exchange in runs))
            stats = hub.budget_stats()["binance:" + KEY[:6]]
        finally:
            for exchange in runs:
                await exchange.close()
            await hub.close()
        served = simulator.stats()
    assert served["served_429"] == 0
    assert served["served_418"] == 0
    assert "429" not in served["responses_by_status"] and "418" not in served["responses_by_status"]
    assert stats.total_weight > 5 * 120, "the runs needed several windows' worth of weight"
    assert stats.waits > 0, "the budget had to hold runs back"


async def test_budget_adopts_the_limit_the_exchange_declares() -> None:
    async with run_simulator(config(weight_limit=321)) as simulator:
        hub = ExchangeHub(FAST)
        exchange = connect(hub, simulator, None)
        try:
            await exchange.load_markets()
            assert hub.budget_stats()["binance:"].limit == 321
        finally:
            await exchange.close()
            await hub.close()


async def test_sustained_outage_opens_the_circuit_and_fails_fast_with_the_reason(
    sim: Simulator, hub: ExchangeHub
) -> None:
    exchange = connect(hub, sim, None)
    try:
        await exchange.fetch_ticker("BTC/USDT")
        sim.set_faults(error_rate=1.0)
        await asyncio.sleep(ExchangeSettings().market_data_max_age_s * 2)  # past the shared ticker's last answer
        with pytest.raises(ExchangeUnavailable, match="503"):
            await exchange.fetch_ticker("BTC/USDT")  # 4 attempts, all 503
        with pytest.raises((ExchangeUnavailable, CircuitOpen)):
            await exchange.fetch_ticker("BTC/USDT")  # the 5th consecutive failure opens the circuit
        sent = sim.stats()["requests_total"]
        with pytest.raises(CircuitOpen, match=r"circuit is open after 5 consecutive failures.*503") as info:
            await exchange.fetch_ticker("BTC/USDT")
        assert info.value.retry_in_s is not None and info.value.retry_in_s > 0
        for _ in range(10):
            with pytest.raises(CircuitOpen):
                await exchange.fetch_order_book("BTC/USDT")
        assert sim.stats()["requests_total"] == sent, "an open circuit sends nothing"
        health = await exchange.health()
        assert health.circuit == "open"
        assert not health.ok
        assert health.last_error is not None and "503" in health.last_error
    finally:
        await exchange.close()


async def test_maintenance_is_reported_as_such(sim: Simulator, hub: ExchangeHub) -> None:
    exchange = connect(hub, sim, None)
    try:
        sim.set_maintenance(True)
        health = await exchange.health()
        assert health.maintenance is True
        assert not health.ok
        with pytest.raises(ExchangeMaintenance, match="maintenance"):
            await exchange.fetch_ticker("BTC/USDT")
    finally:
        await exchange.close()


@pytest.mark.parametrize("action", ["hang_after", "drop_after", "error_after"])
async def test_order_answer_lost_after_acceptance_never_leads_to_a_second_order(
    sim: Simulator, hub: ExchangeHub, action: str
) -> None:
    exchange = connect(hub, sim)
    coid = client_order_id("run-lost-answer", "0")
    try:
        await exchange.load_markets()
        sim.add_fault_rule(method="POST", path="/api/v3/order", action=action, hang_ms=5000)
        order = await exchange.create_order(
            OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=0.001, client_order_id=coid)
        )
    finally:
        await exchange.close()
    stats = sim.stats()
    assert order.client_order_id == coid
    assert order.status == "closed"
    assert order.filled == pytest.approx(0.001)
    # Read back by its id, the order carries no fills: the commission comes from the account's trades.
    assert order.fee_in("BTC") == pytest.approx(0.001 * 0.001)
    assert stats["requests_by_endpoint"]["GET /api/v3/myTrades"] == 1
    assert stats["orders_by_client_order_id"][coid] == 1
    assert stats["orders_total"] == 1
    assert stats["faults_injected"], "the fault must actually have fired"


async def test_order_lost_before_reaching_the_exchange_is_not_sent_again_blindly(
    sim: Simulator, hub: ExchangeHub
) -> None:
    exchange = connect(hub, sim)
    coid = client_order_id("run-lost-request", "3")
    try:
        await exchange.load_markets()
        sim.add_fault_rule(method="POST", path="/api/v3/order", action="drop_before")
        with pytest.raises(ExchangeUnavailable, match="was not placed"):
            await exchange.create_order(
                OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=0.001, client_order_id=coid)
            )
    finally:
        await exchange.close()
    stats = sim.stats()
    assert coid not in stats["orders_by_client_order_id"]
    assert stats["requests_by_endpoint"]["POST /api/v3/order"] == 1
    assert stats["requests_by_endpoint"]["GET /api/v3/order"] >= 1, "looked up instead of sending again"


async def test_the_same_intent_twice_places_one_order(sim: Simulator, hub: ExchangeHub) -> None:
    """An operator restart asks again for order #0 of the run: the duplicate resolves to the first."""
    exchange = connect(hub, sim)
    request = OrderRequest(
        symbol="BTC/USDT", side="buy", type="limit", amount=0.001, price=10_000.0, client_order_id="t-restart-0"
    )
    try:
        first = await exchange.create_order(request)
        again = await exchange.create_order(request)
        cancelled = await exchange.cancel_order("BTC/USDT", client_order_id="t-restart-0")
    finally:
        await exchange.close()
    assert again.id == first.id
    assert cancelled.status == "canceled"
    assert cancelled.client_order_id == "t-restart-0"  # not the cancel request's own id Binance answers with
    assert sim.stats()["orders_by_client_order_id"]["t-restart-0"] == 1


async def test_reads_succeed_through_ten_percent_injected_faults(sim: Simulator, hub: ExchangeHub) -> None:
    exchange = connect(hub, sim)
    try:
        await exchange.load_markets()
        sim.set_faults(error_rate=0.1, seed=11)
        since = sim.replay_now() - 6 * 3600_000
        for _ in range(15):
            assert (await exchange.fetch_ticker("BTC/USDT")).last is not None
            assert (await exchange.fetch_order_book("BTC/USDT", 20)).asks
            assert len(await exchange.fetch_ohlcv("BTC/USDT", "5m", since, since + 3600_000)) == 12
            assert "USDT" in await exchange.fetch_balances()
        assert exchange.circuit.state == "closed"
    finally:
        await exchange.close()
    assert sum(sim.stats()["faults_injected"].values()) > 0, "faults must actually have been injected"


async def test_connections_are_shared_and_closed_with_the_last_handle(sim: Simulator) -> None:
    hub = ExchangeHub(FAST)
    first = connect(hub, sim)
    second = connect(hub, sim)
    other_key = connect(hub, sim, None)
    assert first.client is second.client
    assert other_key.client is not first.client
    assert hub.open_connections() == 2
    await first.close()
    await first.close()  # idempotent
    assert hub.open_connections() == 2
    await second.close()
    assert hub.open_connections() == 1
    await other_key.close()
    assert hub.open_connections() == 0


async def test_a_stop_loss_limit_rests_on_the_exchange_and_fills_when_the_replay_crosses_it(
    tmp_path: Path, hub: ExchangeHub
) -> None:
    minute = 60_000
    start = 1_700_000_000_000 // minute * minute
    rows = [[start + i * minute, 100.0, 100.2, 99.9, 100.0, 5.0] for i in range(60)]
    rows += [[start + (60 + i) * minute, 100.0, 100.1, 90.0 if i == 5 else 99.8, 100.0, 5.0] for i in range(30)]
    path = tmp_path / "BTC_USDT-1m.json"
    path.write_text(json.dumps(rows))
    cfg = config(data=[DataSource(path=path)], start=start + 30 * minute, speed=0.0, align_to_wall_clock=False)
    async with run_simulator(cfg) as simulator:
        exchange = connect(hub, simulator)
        try:
            assert await exchange.supports_protective_stops("BTC/USDT")
            request = OrderRequest(
                symbol="BTC/USDT",
                side="sell",
                type="stop_loss_limit",
                amount=0.2,
                price=94.0,
                stop_price=95.0,
                client_order_id=client_order_id("run-stop", "0"),
            )
            placed = await exchange.create_order(request)
            assert (placed.type, placed.status, placed.stop_price, placed.price) == (
                "stop_loss_limit",
                "open",
                95.0,
                94.0,
            )
            simulator.set_clock(replay_time=start + 80 * minute)  # the dip at minute 65 is behind us
            filled = await exchange.fetch_order("BTC/USDT", client_order_id=request.client_order_id)
        finally:
            await exchange.close()
    assert filled.status == "closed" and filled.filled == pytest.approx(0.2)
    assert 94.0 <= (filled.average or 0) <= 95.0  # the bid as the path crossed the stop, above the limit
    assert start + 65 * minute < (filled.last_trade_timestamp or 0) < start + 66 * minute
    assert filled.fee_in("USDT") == pytest.approx(filled.cost * 0.001, rel=1e-6)

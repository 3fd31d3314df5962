"""The paper broker on REAL market data from the exchange (the simulator through ccxt): it prices fills from
the live order book and never sends an order or reads the account."""

from __future__ import annotations

import pytest

from traiding_adapters import (
    Credentials,
    ExchangeHub,
    ExchangeSettings,
    OrderRequest,
    PaperBroker,
    PaperSettings,
    client_order_id,
)
from traiding_simulator import ApiKeyConfig, SimulatorConfig, client_urls, run_simulator


async def test_paper_fills_at_live_prices_and_never_touches_the_account() -> None:
    config = SimulatorConfig(
        keys=[ApiKeyConfig(key="paper-key", secret="paper-secret-0123456789")],
        synthetic_days=2,
        speed=0.0,  # a frozen market: the fill must match the book we read
        log_requests=False,
    )
    async with run_simulator(config) as sim:
        hub = ExchangeHub(ExchangeSettings())
        exchange = hub.get(
            "binance", Credentials("paper-key", "paper-secret-0123456789"), urls=client_urls(sim.base_url)
        )
        try:
            book = await exchange.fetch_order_book("BTC/USDT", 100)
            paper = PaperBroker(exchange, {"USDT": 100_000.0}, PaperSettings(fee_rate=0.001, slippage_bps=10, seed=1))
            amount = book.asks[0][1] * 0.5  # within the best level
            buy = await paper.create_order(
                OrderRequest(
                    symbol="BTC/USDT",
                    side="buy",
                    type="market",
                    amount=amount,
                    client_order_id=client_order_id("paper-run", "0"),
                )
            )
            sell = await paper.create_order(
                OrderRequest(
                    symbol="BTC/USDT",
                    side="sell",
                    type="market",
                    amount=amount,
                    client_order_id=client_order_id("paper-run", "1"),
                )
            )
            balances = await paper.fetch_balances()
        finally:
            await exchange.close()
            await hub.close()
        stats = sim.stats()
    assert buy.status == "closed"
    assert buy.average == pytest.approx(book.asks[0][0])  # the book's own prices: its depth is the slippage
    assert sell.average == pytest.approx(book.bids[0][0])
    assert balances["USDT"].free < 100_000.0  # the spread and fees cost money
    assert stats["orders_total"] == 0
    endpoints = stats["requests_by_endpoint"]
    assert not any("order" in name.lower() and "orderbook" not in name.lower() for name in endpoints), endpoints
    assert "GET /api/v3/account" not in endpoints

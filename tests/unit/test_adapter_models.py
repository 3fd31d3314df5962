"""Symbol filters and the translation of ccxt's market and order structures into ours."""

from __future__ import annotations

from typing import Any

import pytest

from traiding_adapters.ccxt_exchange import market_from_ccxt, order_from_ccxt
from traiding_adapters.exchange import Market

BTC = Market(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    min_notional=5.0,
    min_qty=1e-5,
    max_qty=9000.0,
    step_size=1e-5,
    tick_size=0.01,
    amount_precision=5,
    price_precision=2,
)


def test_amounts_round_down_to_the_step() -> None:
    assert BTC.round_amount(0.123456789) == pytest.approx(0.12345)
    assert BTC.round_amount(0.3) == pytest.approx(0.3)  # 0.3 / 1e-5 is 29999.999... in binary


def test_prices_round_to_the_tick() -> None:
    assert BTC.round_price(30123.456) == pytest.approx(30123.46)
    assert BTC.round_price(30123.454) == pytest.approx(30123.45)


def test_violations_name_the_filter() -> None:
    assert BTC.violations(0.001, 30_000) == []
    problems = BTC.violations(0.0001, 30_000)
    assert len(problems) == 1 and "minimum notional 5.0 USDT" in problems[0]
    assert "minimum quantity" in BTC.violations(0.000001, 10**9)[0]
    assert "maximum quantity" in BTC.violations(10_000, 30_000)[0]


class TickSizeClient:
    precisionMode = 4  # ccxt TICK_SIZE, as binance


class DecimalPlacesClient:
    precisionMode = 2  # ccxt DECIMAL_PLACES


RAW_MARKET: dict[str, Any] = {
    "symbol": "BTC/USDT",
    "base": "BTC",
    "quote": "USDT",
    "active": True,
    "spot": True,
    "precision": {"amount": 1e-5, "price": 0.01},
    "limits": {"amount": {"min": 1e-5, "max": 9000.0}, "cost": {"min": 5.0}, "price": {"min": 0.01}},
}


def test_tick_size_markets() -> None:
    market = market_from_ccxt(TickSizeClient(), RAW_MARKET)
    assert market == BTC


def test_decimal_places_markets() -> None:
    raw = {**RAW_MARKET, "precision": {"amount": 3, "price": 1}}
    market = market_from_ccxt(DecimalPlacesClient(), raw)
    assert market.step_size == pytest.approx(0.001)
    assert market.tick_size == pytest.approx(0.1)
    assert market.amount_precision == 3


def test_order_translation() -> None:
    raw = {
        "id": 42,
        "clientOrderId": "tabc-1",
        "symbol": "BTC/USDT",
        "side": "sell",
        "type": "limit",
        "status": "canceled",
        "amount": 0.5,
        "filled": 0.2,
        "remaining": None,
        "price": 31000.0,
        "average": 31000.0,
        "cost": None,
        "fee": {"currency": "USDT", "cost": 6.2},
        "timestamp": 1_700_000_000_000,
    }
    order = order_from_ccxt(raw, None)
    assert order.id == "42"
    assert order.client_order_id == "tabc-1"
    assert order.status == "canceled"
    assert order.remaining == pytest.approx(0.3)
    assert order.cost == pytest.approx(0.2 * 31000)
    assert order.fee_in("USDT") == pytest.approx(6.2)


def test_unknown_status_is_treated_as_open() -> None:
    order = order_from_ccxt({"id": "1", "symbol": "BTC/USDT", "status": "canceling", "amount": 1}, "x")
    assert order.status == "open"
    assert order.client_order_id == "x"

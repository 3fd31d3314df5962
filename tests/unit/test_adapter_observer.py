"""What the exchange layer reports to its observer: request latency by endpoint class and outcome, error
classes (also an open circuit), order latency to acknowledgement and fill."""

from __future__ import annotations

import ccxt.async_support as ccxt
import pytest

from tests.unit.test_adapter_connection import FakeBinance, connection
from tests.unit.test_adapter_paper import FakeMarket, market_order
from traiding_adapters.errors import CircuitOpen, ExchangeUnavailable
from traiding_adapters.exchange import Order
from traiding_adapters.observer import endpoint_class, observe_order, request_outcome
from traiding_adapters.paper import PaperBroker, PaperSettings


class RecordingObserver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self.errors: list[tuple[str, str]] = []
        self.orders: list[tuple[str, str, str]] = []

    def exchange_request(self, exchange: str, endpoint: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.requests.append((exchange, endpoint, outcome))

    def exchange_error(self, exchange: str, error_class: str) -> None:
        self.errors.append((exchange, error_class))

    def order_executed(self, exchange: str, mode: str, stage: str, seconds: float) -> None:
        assert seconds >= 0
        self.orders.append((exchange, mode, stage))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("klines", "market_data"),
        ("ticker/24hr", "market_data"),
        ("depth", "market_data"),
        ("exchangeInfo", "market_data"),
        ("order", "order"),
        ("openOrders", "order"),
        ("account", "account"),
        ("account/apiRestrictions", "account"),
        ("capital/config/getall", "account"),
        ("time", "system"),
        ("ping", "system"),
        ("system/status", "system"),
    ],
)
def test_endpoint_classes(path: str, expected: str) -> None:
    assert endpoint_class(path) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, "ok"),
        (ccxt.RateLimitExceeded("429"), "rate_limited"),
        (ccxt.DDoSProtection("418"), "rate_limited"),
        (ccxt.RequestTimeout("timeout"), "error"),
        (ccxt.ExchangeNotAvailable("503"), "error"),
        (ccxt.InvalidNonce("-1021"), "rejected"),
        (ccxt.OrderNotFound("-2013"), "rejected"),
        (ccxt.AuthenticationError("-2015"), "rejected"),
        (ValueError("not json"), "error"),
    ],
)
def test_request_outcomes(error: BaseException | None, expected: str) -> None:
    assert request_outcome(error) == expected


async def test_every_request_and_failed_call_is_reported() -> None:
    client = FakeBinance()
    observer = RecordingObserver()
    conn = connection(client)
    conn.observer = observer
    client.script = [({}, {}), (ccxt.ExchangeNotAvailable("binance 503"), {}), ({}, {})]
    await conn.call(lambda: client.public_get("klines", 0.4))
    await conn.call(lambda: client.public_get("ticker/24hr", 0.4))  # a 503, then a retry that works
    assert observer.requests == [
        ("binance", "market_data", "ok"),
        ("binance", "market_data", "error"),
        ("binance", "market_data", "ok"),
    ]
    assert observer.errors == [("binance", "ExchangeUnavailable")]


async def test_an_open_circuit_is_reported_as_an_error_class() -> None:
    client = FakeBinance()
    observer = RecordingObserver()
    conn = connection(client)
    conn.observer = observer
    client.script = [(ccxt.ExchangeNotAvailable("binance 503"), {}) for _ in range(10)]
    with pytest.raises(ExchangeUnavailable):
        await conn.call(lambda: client.public_get("klines", 0.4))  # three tries open the breaker (threshold 3)
    with pytest.raises(CircuitOpen):
        await conn.call(lambda: client.public_get("klines", 0.4))
    assert observer.errors[-1] == ("binance", "CircuitOpen")
    assert len(observer.requests) == 3  # the open circuit sent nothing


def order(status: str, filled: float) -> Order:
    return Order(
        id="1",
        client_order_id="t1-0",
        symbol="BTC/USDT",
        side="buy",
        type="market",
        status=status,
        amount=1.0,
        filled=filled,
        remaining=1.0 - filled,
        price=None,
        average=None,
        cost=0.0,
        timestamp=None,
    )


@pytest.mark.parametrize(
    ("status", "filled", "stages"),
    [
        ("closed", 1.0, ["ack", "fill"]),
        ("expired", 0.4, ["ack", "fill"]),
        ("open", 0.0, ["ack"]),
        ("open", 0.5, ["ack"]),
    ],
)
def test_an_order_is_timed_to_its_acknowledgement_and_to_its_fill(
    status: str, filled: float, stages: list[str]
) -> None:
    observer = RecordingObserver()
    observe_order(observer, "binance", "live", 0.0, order(status, filled))
    assert [stage for _, _, stage in observer.orders] == stages


async def test_the_paper_broker_reports_its_fills_as_dry_run_orders() -> None:
    observer = RecordingObserver()
    paper = PaperBroker(FakeMarket(), {"USDT": 10_000.0}, PaperSettings(), observer=observer, exchange_id="binance")
    await paper.create_order(market_order("buy", 0.5, 0))
    assert observer.orders == [("binance", "dry-run", "ack"), ("binance", "dry-run", "fill")]

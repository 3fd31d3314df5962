"""Order placement never creates a second order for one intent, whatever happens to the answers."""

from __future__ import annotations

import pytest

from traiding_adapters.errors import (
    CircuitOpen,
    DuplicateOrder,
    ExchangeUnavailable,
    InsufficientFunds,
    OrderNotFound,
    OrderOutcomeUnknown,
)
from traiding_adapters.exchange import Order, OrderRequest
from traiding_adapters.orders import place_order
from traiding_adapters.retry import RetryPolicy

REQUEST = OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=0.01, client_order_id="tabc-1")
LOOKUP = RetryPolicy(attempts=3, initial_wait_s=0, jitter_s=0)


async def no_sleep(_: float) -> None:
    return None


class FakeExchange:
    """Keeps orders by client order id; scripted faults per send / lookup."""

    def __init__(self, send_faults: list[str] | None = None, lookup_faults: list[str] | None = None) -> None:
        self.orders: dict[str, Order] = {}
        self.send_faults = list(send_faults or [])
        self.lookup_faults = list(lookup_faults or [])
        self.sends = 0
        self.lookups = 0

    async def send_order(self, request: OrderRequest) -> Order:
        self.sends += 1
        fault = self.send_faults.pop(0) if self.send_faults else "ok"
        if fault == "lost-before":  # the request never reached the matching engine
            raise ExchangeUnavailable("timeout")
        if fault == "reject":
            raise InsufficientFunds("no money")
        if fault == "circuit":
            raise CircuitOpen("circuit open", last_error="503")
        if request.client_order_id in self.orders:
            raise DuplicateOrder("Duplicate order sent.")
        order = Order(
            id=str(len(self.orders) + 1),
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            status="closed",
            amount=request.amount,
            filled=request.amount,
            remaining=0.0,
            cost=300.0,
        )
        self.orders[request.client_order_id] = order
        if fault == "lost-after":  # accepted, then the answer timed out
            raise ExchangeUnavailable("binance did not answer in time")
        return order

    async def lookup_order(self, symbol: str, client_order_id: str) -> Order:
        self.lookups += 1
        fault = self.lookup_faults.pop(0) if self.lookup_faults else "ok"
        if fault == "down":
            raise ExchangeUnavailable("503")
        if client_order_id not in self.orders:
            raise OrderNotFound("Order does not exist.")
        return self.orders[client_order_id]


async def place(exchange: FakeExchange, max_sends: int = 2) -> Order:
    return await place_order(exchange, REQUEST, lookup_policy=LOOKUP, max_sends=max_sends, sleep=no_sleep)


async def test_happy_path_sends_once_and_never_looks_up() -> None:
    exchange = FakeExchange()
    order = await place(exchange)
    assert order.client_order_id == "tabc-1"
    assert (exchange.sends, exchange.lookups) == (1, 0)


async def test_answer_lost_after_acceptance_resolves_to_the_accepted_order() -> None:
    exchange = FakeExchange(send_faults=["lost-after"])
    order = await place(exchange)
    assert order.id == "1"
    assert len(exchange.orders) == 1
    assert exchange.sends == 1  # never sent again


async def test_lost_before_acceptance_is_sent_again_with_the_same_id() -> None:
    exchange = FakeExchange(send_faults=["lost-before"])
    order = await place(exchange)
    assert exchange.sends == 2
    assert order.client_order_id == "tabc-1"
    assert list(exchange.orders) == ["tabc-1"]


async def test_lookup_is_retried_on_transient_errors() -> None:
    exchange = FakeExchange(send_faults=["lost-after"], lookup_faults=["down", "down"])
    order = await place(exchange)
    assert order.id == "1"
    assert exchange.lookups == 3
    assert exchange.sends == 1


async def test_lookup_failing_for_good_means_outcome_unknown_not_a_resend() -> None:
    exchange = FakeExchange(send_faults=["lost-after"], lookup_faults=["down"] * 10)
    with pytest.raises(OrderOutcomeUnknown) as info:
        await place(exchange)
    assert info.value.client_order_id == "tabc-1"
    assert "tabc-1" in str(info.value)
    assert exchange.sends == 1


async def test_duplicate_answer_resolves_to_the_existing_order() -> None:
    exchange = FakeExchange()
    first = await place(exchange)
    again = await place(exchange)  # e.g. after an operator restart, the same intent asks again
    assert again == first
    assert len(exchange.orders) == 1


async def test_definite_rejection_is_raised_without_lookup() -> None:
    exchange = FakeExchange(send_faults=["reject"])
    with pytest.raises(InsufficientFunds):
        await place(exchange)
    assert (exchange.sends, exchange.lookups) == (1, 0)


async def test_circuit_open_is_raised_without_lookup() -> None:
    exchange = FakeExchange(send_faults=["circuit"])
    with pytest.raises(CircuitOpen):
        await place(exchange)
    assert exchange.lookups == 0


async def test_sends_are_bounded_when_the_exchange_keeps_losing_them() -> None:
    exchange = FakeExchange(send_faults=["lost-before"] * 5)
    with pytest.raises(ExchangeUnavailable, match="was not placed"):
        await place(exchange, max_sends=2)
    assert exchange.sends == 2
    assert exchange.orders == {}

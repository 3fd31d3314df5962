"""The order life cycle: write-ahead intents, reconciliation after a crash, exactly-once booking, fees, dust.

The exchange here keeps its orders whatever happens to the run (as a real one does): `ExchangeAccount` wraps
a paper broker's matching but is not restored from the run's checkpoint, and, like Binance, it may still
accept a request for a while after a send was given up (`late_order_window_ms`).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_session import (
    FALL,
    FLAT,
    RISE,
    SYMBOL,
    T0,
    TF,
    AnswerLostBroker,
    ScriptedMarket,
    event_types,
    fills,
    make_context,
)
from traiding.domain.statemachine import OutcomeKind
from traiding.pipeline.context import RunContext
from traiding.pipeline.order_lifecycle import (
    MARKET_EXECUTION_LIMIT_MS,
    SEND_START_LIMIT_MS,
    SEND_TIMEOUT_S,
    OrderLifecycle,
)
from traiding.pipeline.session import TradingSession
from traiding_adapters.client_ids import client_order_id
from traiding_adapters.errors import ExchangeUnavailable, OrderOutcomeUnknown, UnknownSymbol
from traiding_adapters.exchange import Balance, Fee, Market, Order, OrderRequest, Ticker
from traiding_adapters.paper import PaperBroker, PaperSettings

BTC = "BTC/USDT"


class Crash(BaseException):
    """The driver process dies here (nothing after this point runs, nothing is written)."""


class ExchangeAccount:
    """An exchange account: its orders survive the run's crashes; counts every create per client order id."""

    def __init__(self, market: ScriptedMarket, window_ms: int = 60_000) -> None:
        self.matching = PaperBroker(
            market,
            {"USDT": 10_000.0, "ETH": 0.0, "BTC": 0.0},
            PaperSettings(fee_rate=0.001, slippage_bps=0, candle_timeframe="5m"),
        )
        self.window_ms = window_ms
        self.creates: Counter[str] = Counter()

    @property
    def late_order_window_ms(self) -> int:
        return self.window_ms

    async def supports_protective_stops(self, symbol: str) -> bool:
        return True

    async def fetch_balances(self) -> dict[str, Balance]:
        return await self.matching.fetch_balances()

    async def create_order(self, request: OrderRequest) -> Order:
        self.creates[request.client_order_id] += 1
        return await self.matching.create_order(request)

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order:
        return await self.matching.cancel_order(symbol, client_order_id=client_order_id)

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> Order:
        return await self.matching.fetch_order(symbol, client_order_id=client_order_id)


class Store:
    """What the driver persisted: a copy of the checkpoint at every flush; `crash_at` kills it at that flush
    (before writing), `crash_after` right after writing that flush (before the order goes out)."""

    def __init__(
        self,
        checkpoint: dict[str, Any],
        crash_at: int | None = None,
        crash_after: int | None = None,
        account: ExchangeAccount | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.crash_at = crash_at
        self.crash_after = crash_after
        self.account = account
        self.flushes: list[dict[str, Any]] = []
        self.sent_before: list[set[str]] = []  # client order ids the exchange had at each flush

    async def flush(self) -> None:
        if self.crash_at is not None and len(self.flushes) + 1 == self.crash_at:
            raise Crash
        self.flushes.append(json.loads(json.dumps(self.checkpoint)))
        self.sent_before.append(set(self.account.creates) if self.account else set())
        if self.crash_after is not None and len(self.flushes) == self.crash_after:
            raise Crash

    @property
    def stored(self) -> dict[str, Any]:
        return copy.deepcopy(self.flushes[-1])


def two_symbol_context(tmp_path: Path) -> tuple[RunContext, ScriptedMarket, ExchangeAccount, Any]:
    market = ScriptedMarket({SYMBOL: FLAT + RISE + [108.0] * 30, BTC: FLAT + RISE + [108.0] * 30})
    ctx, sink, _ = make_context(market, tmp_path, symbols=[SYMBOL, BTC], maxPositionFraction=0.3)
    account = ExchangeAccount(market)
    ctx.orders = account
    return ctx, market, account, sink


async def test_an_intent_is_persisted_before_its_order_is_sent(tmp_path: Path) -> None:
    ctx, market, account, _ = two_symbol_context(tmp_path)
    checkpoint: dict[str, Any] = {}
    store = Store(checkpoint, account=account)
    await TradingSession(ctx, checkpoint, store.flush).step()
    market.advance(2)
    await TradingSession(ctx, checkpoint, store.flush).step()
    assert len(store.flushes) == 2  # one write per order, each before its send
    for flushed, symbol in zip(store.flushes, [SYMBOL, BTC], strict=True):
        [intent] = [i for i in flushed["session"]["intents"].values() if i["symbol"] == symbol]
        assert intent["side"] == "buy" and intent["reason"] == "entry" and intent["amount"] > 0
        assert intent["client_order_id"] == client_order_id(
            "abc123", f"{symbol}|buy|market|{intent['candle_time']}|entry|0"
        )
    for flushed, sent_before in zip(store.flushes, store.sent_before, strict=True):
        assert not set(flushed["session"]["intents"]) & sent_before  # not yet sent when it was written
    assert checkpoint["session"]["intents"] == {}  # both resolved by the end of the step
    assert set(checkpoint["session"]["orders"]) == set(account.creates)


async def test_a_failed_write_sends_nothing(tmp_path: Path) -> None:
    ctx, market, account, _ = two_symbol_context(tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.advance(2)

    class Conflict(Exception):
        pass

    async def conflicting() -> None:
        raise Conflict("the object changed since this step read it")

    with pytest.raises(Conflict):
        await TradingSession(ctx, checkpoint, conflicting).step()
    assert account.creates == Counter()


async def test_a_crash_between_send_and_write_is_reconciled_once_on_a_changed_market(tmp_path: Path) -> None:
    """The review's scenario: two symbols, the driver dies after sending the first symbol's buy; the restarted
    driver sees one more candle. Nothing is sent twice, and what was sent is booked exactly once."""
    ctx, market, account, sink = two_symbol_context(tmp_path)
    checkpoint: dict[str, Any] = {}
    store = Store(checkpoint, crash_at=2)  # dies when writing the second intent: the first order is out
    await TradingSession(ctx, checkpoint, store.flush).step()
    market.advance(2)
    with pytest.raises(Crash):
        await TradingSession(ctx, checkpoint, store.flush).step()
    [sent] = list(account.creates)
    restarted = store.stored  # the status the cluster holds: the first intent, not its result
    assert list(restarted["session"]["intents"]) == [sent]
    market.advance()
    store.crash_at = None
    result = await TradingSession(ctx, restarted, store.flush).step()
    assert result.outcome.kind is OutcomeKind.RUNNING
    assert set(account.creates.values()) == {1}  # every intent sent at most once
    assert restarted["session"]["intents"] == {}
    booked = restarted["session"]["orders"]
    assert set(booked) == set(account.creates)  # every order the exchange has is in the books, once
    eth = await account.fetch_order(SYMBOL, client_order_id=sent)
    assert restarted["session"]["positions"][SYMBOL]["amount"] == pytest.approx(eth.filled)
    assert "OrderRecovered" in event_types(sink)


async def test_an_order_under_our_id_that_is_not_the_intended_one_stops_the_run(tmp_path: Path) -> None:
    ctx, market, account, sink = two_symbol_context(tmp_path)
    checkpoint: dict[str, Any] = {}
    store = Store(checkpoint, crash_after=1)  # written, then dead before the send
    await TradingSession(ctx, checkpoint, store.flush).step()
    market.advance(2)
    with pytest.raises(Crash):
        await TradingSession(ctx, checkpoint, store.flush).step()
    restarted = store.stored
    [intent] = restarted["session"]["intents"].values()
    # Someone else placed an order under that id, for another amount: not ours.
    await account.matching.create_order(
        OrderRequest(
            symbol=SYMBOL,
            side="buy",
            type="market",
            amount=intent["amount"] / 2,
            client_order_id=intent["client_order_id"],
        )
    )
    account.creates.clear()
    result = await TradingSession(ctx, restarted).step()
    assert (result.outcome.kind, result.outcome.reason) == (OutcomeKind.FAILED, "OrderMismatch")
    assert "is not the order this run intended" in result.outcome.message
    assert f"amount {intent['amount'] / 2:g}, intended {intent['amount']:g}" in result.outcome.message
    assert restarted["session"]["mismatched"][0]["client_order_id"] == intent["client_order_id"]
    assert restarted["session"]["positions"].get(SYMBOL, {}).get("amount", 0) == 0  # not booked as ours
    assert account.creates == Counter()
    assert [e.level for e in sink.events if e.type == "OrderMismatch"] == ["error"]


async def test_an_unknown_intent_waits_for_the_late_request_window_then_counts_as_not_placed(tmp_path: Path) -> None:
    ctx, market, account, sink = two_symbol_context(tmp_path)
    checkpoint: dict[str, Any] = {}
    wall = [1_000_000]
    store = Store(checkpoint, crash_after=1)  # written, then the process dies before sending
    await TradingSession(ctx, checkpoint, store.flush, wall_ms=lambda: wall[0]).step()
    market.advance(2)
    with pytest.raises(Crash):
        await TradingSession(ctx, checkpoint, store.flush, wall_ms=lambda: wall[0]).step()
    restarted = store.stored
    [coid] = restarted["session"]["intents"]
    window = SEND_START_LIMIT_MS + int(SEND_TIMEOUT_S * 1000) + account.window_ms
    wall[0] += window - 1  # a request on its way could still be accepted
    waiting = await TradingSession(ctx, restarted, wall_ms=lambda: wall[0]).step()
    assert (waiting.outcome.kind, waiting.outcome.reason) == (OutcomeKind.RUNNING, "WaitingForOrders")
    assert coid in waiting.outcome.message
    assert list(restarted["session"]["intents"]) == [coid]
    wall[0] += 2
    await TradingSession(ctx, restarted, wall_ms=lambda: wall[0]).step()
    assert restarted["session"]["intents"] == {}
    [dropped] = [e for e in sink.events if e.type == "OrderNotPlaced"]
    assert coid in dropped.message and dropped.level == "warning"
    assert account.creates[coid] == 0  # never sent, and not sent now either: its candle is history


async def test_a_paper_order_the_stored_account_does_not_know_was_never_placed(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    store = Store(checkpoint, crash_at=2)
    await TradingSession(ctx, checkpoint, store.flush).step()
    market.advance(2)
    store.crash_at = None

    original = broker.create_order

    async def send_then_die(request: OrderRequest) -> Order:
        await original(request)
        raise Crash

    broker.create_order = send_then_die  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await TradingSession(ctx, checkpoint, store.flush).step()
    broker.create_order = original  # type: ignore[method-assign]
    restarted = store.stored  # the paper account as written with the intent: without the order
    await TradingSession(ctx, restarted, store.flush).step()
    assert restarted["session"]["intents"] == {}
    assert "OrderNotPlaced" in event_types(sink)
    assert restarted["session"]["paper"]["orders"] == []  # the account and the books agree: no position
    assert restarted["session"]["positions"].get(SYMBOL, {}).get("amount", 0) == 0


async def test_an_order_is_booked_once_whatever_reports_it(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {"cash": 10_000.0}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    order = await broker.create_order(
        OrderRequest(symbol=SYMBOL, side="buy", type="market", amount=1.0, client_order_id="t1")
    )
    await books._book(order, "entry", T0)
    await books._book(order, "entry", T0)
    assert books.position(SYMBOL).amount == pytest.approx(1.0)
    assert checkpoint["cash"] == pytest.approx(10_000 - order.cost - order.fee_in("USDT"))


async def _nothing() -> None:
    return None


class BnbFees(AnswerLostBroker):
    """Binance with the BNB discount: the commission is paid in BNB, not in the traded assets."""

    async def create_order(self, request: OrderRequest) -> Order:
        order = await super().create_order(request)
        return order.model_copy(update={"fees": (Fee(currency="BNB", cost=0.01),)})


async def test_fees_paid_in_bnb_are_booked_in_the_quote_currency(tmp_path: Path) -> None:
    market = ScriptedMarket({SYMBOL: FLAT + RISE, "BNB/USDT": [300.0] * 16})
    ctx, sink, _ = make_context(market, tmp_path)
    ctx.orders = BnbFees(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    checkpoint: dict[str, Any] = {"cash": 10_000.0}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    order = await books.buy(SYMBOL, 1.0, T0)
    assert order is not None
    assert checkpoint["fees"] == pytest.approx(0.01 * 300.0)  # 0.01 BNB at the BNB/USDT mid
    assert checkpoint["cash"] == pytest.approx(10_000 - order.cost - 3.0)
    assert books.position(SYMBOL).amount == pytest.approx(1.0)  # nothing taken from the base
    assert fills(sink)[0]["fee"] == pytest.approx(3.0)


async def test_a_remainder_below_the_minimum_notional_is_reported_as_dust_not_retried(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 100.0}}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 0.03, T0)  # worth about 3 USDT: below the minimum notional of 5
    await books.sell(SYMBOL, "signal", T0 + TF)
    await books.sell(SYMBOL, "signal", T0 + 2 * TF)
    assert [o.side for o in broker._orders.values()] == ["buy"]
    assert checkpoint["positions"][SYMBOL]["amount"] == 0
    assert checkpoint["dust"][SYMBOL] == pytest.approx(0.03)
    [dust] = [e for e in sink.events if e.type == "DustLeft"]
    assert "below the minimum notional 5.0" in dust.message and dust.level == "warning"
    assert books.equity({SYMBOL: 100.0}) == pytest.approx(checkpoint["cash"] + 3.0)  # dust still counts


async def test_a_stop_that_filled_while_the_driver_was_away_is_booked_at_its_fill(tmp_path: Path) -> None:
    closes = FLAT + RISE + [108.5] * 34
    market = ScriptedMarket(closes, lows={len(FLAT) + len(RISE) + 3: 90.0})
    ctx, _, broker = make_context(market, tmp_path, stopLossPct=5)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.advance(2)
    await TradingSession(ctx, checkpoint).step()
    stop = checkpoint["session"]["positions"][SYMBOL]["stop_order"]
    stored = json.loads(json.dumps(checkpoint))
    market.advance(8)  # the driver is away while the price falls through the stop and recovers
    await TradingSession(ctx, stored).step()
    [trade] = stored["session"]["trades"]
    assert (trade["reason"], trade["exit_time"]) == ("stop_loss", T0 + (len(FLAT) + len(RISE) + 3) * TF)
    assert stored["session"]["orders"][stop]["side"] == "sell"
    assert not [o for o in broker._orders.values() if o.type == "market" and o.side == "sell"]


async def test_a_partly_filled_exit_moves_the_stop_to_what_is_left(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path, stopLossPct=5)
    checkpoint: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 108.0}}
    markets: dict[str, Market] = await market.load_markets()
    books = OrderLifecycle(ctx, checkpoint, markets, flush=_nothing)
    await books.buy(SYMBOL, 10.0, T0)
    first_stop = books.position(SYMBOL).stop_order
    assert first_stop is not None and books.position(SYMBOL).stop_amount == pytest.approx(10.0)
    partial = await broker.create_order(
        OrderRequest(symbol=SYMBOL, side="buy", type="market", amount=0.5, client_order_id="manual-extra")
    )
    await books._book(partial, "entry", T0 + TF)  # the position grew: the stop must cover all of it
    await books.ensure_stop(SYMBOL)
    moved = books.position(SYMBOL)
    assert moved.stop_order not in (None, first_stop)
    assert moved.stop_amount == pytest.approx(moved.amount)
    assert (await broker.fetch_order(SYMBOL, client_order_id=first_stop)).status == "canceled"


class ListedOnly(ScriptedMarket):
    """Tickers only for the symbols it lists, as an exchange answers for others."""

    async def fetch_ticker(self, symbol: str) -> Ticker:
        if symbol not in self.close:
            raise UnknownSymbol(f"{symbol} is not listed on scripted")
        return await super().fetch_ticker(symbol)


async def test_a_fee_asset_listed_the_other_way_round_is_valued_through_the_inverse_market(tmp_path: Path) -> None:
    market = ListedOnly({SYMBOL: FLAT + RISE, "USDT/BNB": [1 / 300.0] * 16})
    ctx, _, _ = make_context(market, tmp_path)
    ctx.orders = BnbFees(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    checkpoint: dict[str, Any] = {"cash": 10_000.0}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 1.0, T0)
    assert checkpoint["fees"] == pytest.approx(3.0, rel=1e-3)


async def test_a_fee_no_market_can_value_is_reported_not_guessed(tmp_path: Path) -> None:
    market = ListedOnly(FLAT + RISE)
    ctx, sink, _ = make_context(market, tmp_path)
    ctx.orders = BnbFees(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    checkpoint: dict[str, Any] = {"cash": 10_000.0}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    order = await books.buy(SYMBOL, 1.0, T0)
    assert order is not None and books.position(SYMBOL).amount == pytest.approx(1.0)  # booked all the same
    [warning] = [e for e in sink.events if e.type == "FeeNotValued"]
    assert "cannot be valued in USDT" in warning.message and warning.level == "warning"


async def test_no_stop_is_placed_once_the_market_is_past_it(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path, stopLossPct=5)
    checkpoint: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 100.0}}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 1.0, T0)
    assert books.position(SYMBOL).stop_order is not None
    await books.cancel_stop(SYMBOL)
    checkpoint["last_prices"][SYMBOL] = 90.0  # fell through the stop between two looks
    await books.ensure_stop(SYMBOL)
    assert books.position(SYMBOL).stop_order is None  # the candle check sells instead; no refused order
    assert [o.type for o in broker._orders.values()] == ["market", "stop_loss_limit"]


class BnbTickerFails(ScriptedMarket):
    """A market whose BNB/USDT ticker (the fee asset's price) fails `fail_bnb` times: a 503, a rate limit."""

    fail_bnb = 0

    async def fetch_ticker(self, symbol: str) -> Ticker:
        if symbol.startswith("BNB") and self.fail_bnb:
            self.fail_bnb -= 1
            raise ExchangeUnavailable("scripted: 503 on the BNB/USDT ticker")
        return await super().fetch_ticker(symbol)


class ReportedOrders(AnswerLostBroker):
    """Every order as the exchange reports it (created, read back, cancelled) passes through `view`."""

    def view(self, order: Order) -> Order:
        return order

    async def create_order(self, request: OrderRequest) -> Order:
        return self.view(await super().create_order(request))

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> Order:
        return self.view(await super().fetch_order(symbol, client_order_id=client_order_id))

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order:
        return self.view(await super().cancel_order(symbol, client_order_id=client_order_id))


class BnbFeesEverywhere(ReportedOrders):
    """Filled orders (of `only`, or of every symbol) carry their commission in BNB."""

    only: str | None = None

    def view(self, order: Order) -> Order:
        if order.filled <= 0 or (self.only is not None and order.symbol != self.only):
            return order
        return order.model_copy(update={"fees": (Fee(currency="BNB", cost=0.01),)})


async def test_a_fill_whose_fee_cannot_be_valued_yet_stays_an_intent_and_is_booked_once_later(
    tmp_path: Path,
) -> None:
    market = BnbTickerFails({SYMBOL: FLAT + RISE, "BNB/USDT": [300.0] * 16})
    ctx, _, _ = make_context(market, tmp_path)
    broker = BnbFeesEverywhere(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    ctx.orders = broker
    checkpoint: dict[str, Any] = {"cash": 10_000.0}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    market.fail_bnb = 1
    with pytest.raises(ExchangeUnavailable):
        await books.buy(SYMBOL, 1.0, T0)
    [filled] = broker._orders.values()
    assert filled.status == "closed"
    # The order filled: until it is in the books, the run knows it may hold something.
    assert list(checkpoint["intents"]) == [filled.client_order_id]
    assert books.holds_anything()
    assert await books.reconcile() is None
    assert books.position(SYMBOL).amount == pytest.approx(1.0)
    assert checkpoint["intents"] == {}
    assert checkpoint["cash"] == pytest.approx(10_000 - filled.cost - 0.01 * 300.0)
    await books.reconcile()
    assert list(checkpoint["orders"]) == [filled.client_order_id]  # booked once


async def test_a_filled_stop_whose_fee_cannot_be_valued_yet_keeps_the_position_until_it_is_booked(
    tmp_path: Path,
) -> None:
    closes = FLAT + RISE + [108.5] * 34
    market = BnbTickerFails({SYMBOL: closes, "BNB/USDT": [300.0] * len(closes)})
    market.advance(len(FLAT) + len(RISE) - market.visible)
    ctx, _, _ = make_context(market, tmp_path, stopLossPct=5)
    broker = BnbFeesEverywhere(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    ctx.orders = broker
    checkpoint: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: market.price()}}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 1.0, T0)
    stop = books.position(SYMBOL).stop_order
    assert stop is not None
    market.low[SYMBOL][market.visible] = 90.0  # the next candle falls through the stop
    market.advance(3)
    market.fail_bnb = 1
    await books.refresh_stops()
    with pytest.raises(ExchangeUnavailable):
        books.raise_unresolved()
    assert (await broker.fetch_order(SYMBOL, client_order_id=stop)).status == "closed"
    held = books.position(SYMBOL)
    assert held.amount == pytest.approx(1.0)
    assert held.stop_order == stop  # not forgotten: booked next time
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)  # the next step
    await books.refresh_stops()
    assert books.position(SYMBOL).amount == 0
    assert [t["reason"] for t in checkpoint["trades"]] == ["stop_loss"]
    assert not books.holds_anything()


async def test_a_stop_found_cancelled_unfilled_on_reconciliation_is_no_trade(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path, stopLossPct=5)
    checkpoint: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 108.0}}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 1.0, T0)
    await books.cancel_stop(SYMBOL)
    broker.lose_next = True  # the new stop's answer is lost: its intent stays written
    with pytest.raises(OrderOutcomeUnknown):
        await books.ensure_stop(SYMBOL)
    [coid] = checkpoint["intents"]
    await broker.cancel_order(SYMBOL, client_order_id=coid)  # someone cancelled it on the exchange meanwhile
    assert await books.reconcile() is None
    assert checkpoint["trades"] == []
    assert checkpoint.get("closed_trades", 0) == 0
    assert books.position(SYMBOL).amount == pytest.approx(1.0)


async def test_dust_written_off_keeps_a_stop_that_still_rests_on_the_exchange(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path, stopLossPct=5)
    checkpoint: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 108.0}}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 0.1, T0)
    stop = books.position(SYMBOL).stop_order
    assert stop is not None
    position = books.position(SYMBOL)
    books._write_off_dust(SYMBOL, position, "below the minimum notional")
    assert books.position(SYMBOL).amount == 0
    assert books.position(SYMBOL).stop_order == stop  # an order on the exchange is never forgotten
    assert books.holds_anything()
    await books.close_all("session_end")  # takes it off the exchange
    assert (await broker.fetch_order(SYMBOL, client_order_id=stop)).status == "canceled"
    assert not books.holds_anything()


CLOSES_LONG = FLAT + RISE + [108.0] * 30


# --- F7: a market order still executing on one symbol ------------------------------------------------------
class StuckMarketOrders(ReportedOrders):
    """Market orders on `stuck` read as still executing ('open'), as an exchange reports a slow fill."""

    stuck: str | None = SYMBOL

    def view(self, order: Order) -> Order:
        if order.type == "market" and order.symbol == self.stuck:
            return order.model_copy(update={"status": "open"})
        return order


async def test_liquidation_closes_other_positions_while_one_market_order_still_executes(tmp_path: Path) -> None:
    market = ScriptedMarket({SYMBOL: CLOSES_LONG, BTC: CLOSES_LONG})
    ctx, _, _ = make_context(market, tmp_path, symbols=[SYMBOL, BTC], maxPositionFraction=0.3)
    broker = StuckMarketOrders(
        market, {"USDT": 10_000.0, "ETH": 0.0, "BTC": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0)
    )
    ctx.orders = broker
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.advance(2)
    await TradingSession(ctx, checkpoint).step()  # ETH's buy still executing, BTC's booked
    session = checkpoint["session"]
    assert len(session["intents"]) == 1
    assert session["positions"][BTC]["amount"] > 0
    # The run is cancelled (or its Trading deadline passed): Liquidating. ETH's order is not ours to hurry, but
    # BTC's position has nothing to do with it; before F7 it was sold here, now the whole exit waits (RUNNING,
    # attempts 0: no ExitRefused event, no Liquidated=False condition), for as long as ETH's order reads open.
    for _ in range(3):
        result = await TradingSession(ctx, checkpoint).liquidate()
    assert session["positions"][BTC]["amount"] == 0, result.outcome


# --- F8: a stop whose cancel has not taken effect yet ------------------------------------------------------
class PendingCancel(AnswerLostBroker):
    """A cancel the exchange acknowledges without a status (ccxt: None, read as 'open') and completes a moment
    later: the order and the coins it reserves are still there when the next request reads the balance."""

    pending = False

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order:
        if self.pending:
            return self._get(symbol, client_order_id)
        return await super().cancel_order(symbol, client_order_id=client_order_id)


async def test_a_stop_still_being_cancelled_does_not_turn_the_whole_position_into_dust(tmp_path: Path) -> None:
    market = ScriptedMarket(CLOSES_LONG)
    ctx, _, _ = make_context(market, tmp_path, stopLossPct=5)
    broker = PendingCancel(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    ctx.orders = broker
    checkpoint: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 108.0}}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 1.0, T0)
    assert books.position(SYMBOL).stop_order is not None
    broker.pending = True
    await books.sell(SYMBOL, "signal", T0)
    # The free ETH balance is 0 only because the stop still reserves it: that is no reason to write 1 ETH
    # (108 USDT, far above the minimum notional) off as dust. Once the cancel completes, close_all cancels
    # nothing and sells nothing (amount 0), and the run ends "flat" with the account holding the coin.
    assert checkpoint["dust"].get(SYMBOL, 0.0) == 0.0
    assert books.position(SYMBOL).amount == pytest.approx(1.0)


# --- F1: an intent whose booking fails for good ------------------------------------------------------------
class BnbForEth(ScriptedMarket):
    """The BNB/USDT ticker answers `bnb_answers` times, then fails (a delisted or halted valuation market)."""

    bnb_answers = 10**9

    async def fetch_ticker(self, symbol: str) -> Ticker:
        if symbol.startswith("BNB"):
            if self.bnb_answers <= 0:
                raise ExchangeUnavailable("scripted: BNB/USDT ticker keeps failing")
            self.bnb_answers -= 1
        return await super().fetch_ticker(symbol)


class EthFeesInBnb(BnbFeesEverywhere):
    only = SYMBOL


async def test_one_fill_that_cannot_be_booked_does_not_block_closing_every_other_position(tmp_path: Path) -> None:
    market = BnbForEth({SYMBOL: CLOSES_LONG, BTC: CLOSES_LONG, "BNB/USDT": [300.0] * len(CLOSES_LONG)})
    ctx, _, _ = make_context(market, tmp_path, symbols=[BTC, SYMBOL], maxPositionFraction=0.3)
    ctx.orders = EthFeesInBnb(
        market, {"USDT": 10_000.0, "ETH": 0.0, "BTC": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0)
    )
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.advance(2)
    market.bnb_answers = 0  # from now on ETH's fill cannot be valued
    result = await TradingSession(ctx, checkpoint).step()  # BTC bought and booked, ETH bought, not booked
    assert result.outcome.kind is OutcomeKind.TRANSIENT
    session = checkpoint["session"]
    assert session["positions"][BTC]["amount"] > 0
    assert len(session["intents"]) == 1
    # Liquidating retries forever (by design), each attempt failing in reconcile() before close_all: BTC is
    # never sold although its exit needs no BNB price. (Before F1 the ETH fill was lost instead.)
    for _ in range(3):
        await TradingSession(ctx, checkpoint).liquidate()
    assert session["positions"][BTC]["amount"] == 0


async def test_a_market_order_executing_too_long_is_cancelled_and_what_filled_is_booked(tmp_path: Path) -> None:
    market = ScriptedMarket(CLOSES_LONG)
    ctx, sink, _ = make_context(market, tmp_path)

    class CancelEndsIt(StuckMarketOrders):
        """Reports the order executing until it is asked to cancel it; then it tells how the order ended."""

        async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order:
            self.stuck = None
            return await super().cancel_order(symbol, client_order_id=client_order_id)

    broker = CancelEndsIt(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    ctx.orders = broker
    now = [1_000_000]
    checkpoint: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 100.0}}
    books = OrderLifecycle(ctx, checkpoint, await market.load_markets(), flush=_nothing, wall_ms=lambda: now[0])
    await books.buy(SYMBOL, 1.0, T0)
    assert books.busy(SYMBOL)
    assert await books.reconcile() is None  # still executing: only its symbol waits
    assert await books.buy(SYMBOL, 1.0, T0 + TF) is None  # no second order against spent cash
    assert [o.side for o in broker._orders.values()] == ["buy"]
    now[0] += MARKET_EXECUTION_LIMIT_MS + 1
    await books.reconcile()
    assert not books.busy(SYMBOL)
    assert books.position(SYMBOL).amount == pytest.approx(1.0)
    assert "OrderCancelled" in event_types(sink)


CLOSES_EXIT = FLAT + RISE + FALL + [96.0] * 30


class StopReadFails(AnswerLostBroker):
    """Reading a resting stop fails (a 503) while `fail_stop_reads` is set; everything else works."""

    fail_stop_reads = False

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> Order:
        order = await super().fetch_order(symbol, client_order_id=client_order_id)
        if self.fail_stop_reads and order.type == "stop_loss_limit":
            raise ExchangeUnavailable("scripted: 503 reading the stop")
        return order


class CancelAckWithoutStatus(AnswerLostBroker):
    """The cancel takes effect, but its answer carries no status (ccxt None -> read as 'open')."""

    ack_open = False

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order:
        order = await super().cancel_order(symbol, client_order_id=client_order_id)
        if self.ack_open:
            return order.model_copy(update={"status": "open"})
        return order


async def _exit_step(tmp_path: Path) -> int:
    """How many candles after the first step the signal exit happens with a healthy exchange."""
    market = ScriptedMarket(CLOSES_EXIT)
    ctx, _, _ = make_context(market, tmp_path, stopLossPct=20)
    ctx.orders = StopReadFails(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0.001, slippage_bps=0))
    cp: dict[str, Any] = {}
    await TradingSession(ctx, cp).step()
    for n in range(1, 20):
        market.advance()
        await TradingSession(ctx, cp).step()
        if cp["session"]["trades"]:
            assert cp["session"]["trades"][0]["reason"] == "signal"
            return n
    raise AssertionError("no exit in the baseline")


async def exit_run(
    tmp_path: Path, broker_type: type[AnswerLostBroker]
) -> tuple[ScriptedMarket, RunContext, Any, dict[str, Any], int]:
    """The scenario of the exit tests: a run on CLOSES_EXIT with `broker_type` as its exchange, after its first
    step; and the step (after that one) on whose candle its exit signal comes (`_exit_step`)."""
    exit_at = await _exit_step(tmp_path / "a")
    market = ScriptedMarket(CLOSES_EXIT)
    ctx, _, _ = make_context(market, tmp_path / "b", stopLossPct=20)
    broker = broker_type(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0.001, slippage_bps=0))
    ctx.orders = broker
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    return market, ctx, broker, checkpoint, exit_at


async def test_an_exit_signal_on_a_symbol_whose_stop_read_failed_is_not_lost(tmp_path: Path) -> None:
    market, ctx, broker, cp, exit_at = await exit_run(tmp_path, StopReadFails)
    for n in range(1, 20):
        market.advance()
        broker.fail_stop_reads = n == exit_at  # one 503 reading ETH's stop, on the candle of the exit signal
        await TradingSession(ctx, cp).step()
        if n == exit_at:  # the state machine retries after its backoff (2 s): the same candle is still newest
            broker.fail_stop_reads = False
            await TradingSession(ctx, cp).step()
    # The exit cannot go while ETH's stop cannot be read; it waits as a pending exit and goes on the retry.
    assert cp["session"]["trades"], f"still holding {cp['session']['positions'][SYMBOL]['amount']} ETH"


async def test_an_exit_whose_stop_cancel_is_still_pending_happens_once_it_completes(tmp_path: Path) -> None:
    market, ctx, broker, cp, exit_at = await exit_run(tmp_path, CancelAckWithoutStatus)
    for n in range(1, 20):
        market.advance()
        broker.ack_open = n == exit_at
        await TradingSession(ctx, cp).step()
        if n == exit_at:  # a retry within the same candle
            broker.ack_open = False
            await TradingSession(ctx, cp).step()
    # The exit waits while its stop is still being cancelled, and goes once the cancel completed; no fresh stop
    # goes under the position the strategy left.
    assert cp["session"]["trades"], f"still holding {cp['session']['positions'][SYMBOL]['amount']} ETH"


async def test_moving_a_stop_whose_cancel_is_pending_does_not_leave_two_stops(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, _ = make_context(market, tmp_path, stopLossPct=5)
    broker = PendingCancel(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    ctx.orders = broker
    cp: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 108.0}}
    books = OrderLifecycle(ctx, cp, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 1.0, T0)
    stale = books.position(SYMBOL).stop_order
    assert stale
    # The state buy() now handles: a zero position that keeps its stop (a dust write-off keeps it).
    cp["positions"][SYMBOL]["amount"] = 0.0
    broker.pending = True  # the exchange acknowledges cancels that have not taken effect yet
    await books.buy(SYMBOL, 0.5, T0 + TF)
    open_stops = [o.client_order_id for o in broker._orders.values() if o.type != "market" and o.status == "open"]
    assert books.position(SYMBOL).stop_order in open_stops
    assert open_stops == [books.position(SYMBOL).stop_order], f"stops resting: {open_stops}, stale {stale}"


class BalancesFailOnce(AnswerLostBroker):
    fail_balances = False

    async def fetch_balances(self) -> dict[str, Balance]:
        if self.fail_balances:
            self.fail_balances = False
            raise ExchangeUnavailable("scripted: 503 on the account's balances")
        return await super().fetch_balances()


async def test_an_exit_that_failed_on_the_way_is_sent_on_the_next_step(tmp_path: Path) -> None:
    market, ctx, broker, cp, exit_at = await exit_run(tmp_path, BalancesFailOnce)
    for n in range(1, exit_at + 1):
        market.advance()
        broker.fail_balances = n == exit_at  # the exit cancels the stop, then the balances read fails
        result = await TradingSession(ctx, cp).step()
    assert result.outcome.kind is OutcomeKind.TRANSIENT
    assert cp["session"]["trades"] == []
    assert SYMBOL in cp["session"]["pending_exits"]
    await TradingSession(ctx, cp).step()  # the retry, on the same candle
    assert [t["reason"] for t in cp["session"]["trades"]] == ["signal"]
    assert cp["session"]["pending_exits"] == {}
    assert [o.side for o in broker._orders.values() if o.type == "market"] == ["buy", "sell"]


def market_sells(broker: Any) -> list[Order]:
    return [o for o in broker._orders.values() if o.type == "market" and o.side == "sell"]


async def test_lost_answer_of_an_exit_is_reconciled_and_not_sold_twice(tmp_path: Path) -> None:
    market, ctx, broker, cp, exit_at = await exit_run(tmp_path, AnswerLostBroker)
    for n in range(1, exit_at + 1):
        market.advance()
        broker.lose_next = n == exit_at  # the exit's sell goes out, its answer is lost
        await TradingSession(ctx, cp).step()
    assert SYMBOL in cp["session"]["pending_exits"]
    assert len(cp["session"]["intents"]) == 1
    for _ in range(3):  # reconcile + retry on the same candle, then more candles
        await TradingSession(ctx, cp).step()
        market.advance()
    assert len(market_sells(broker)) == 1
    assert [t["reason"] for t in cp["session"]["trades"]] == ["signal"]
    assert cp["session"]["pending_exits"] == {}


class StuckSells(StuckMarketOrders):
    stuck_sells = False

    def view(self, order: Order) -> Order:
        if order.type == "market" and order.side == "sell" and self.stuck_sells:
            return order.model_copy(update={"status": "open"})
        return order


async def test_exit_executing_for_several_steps_is_sent_once(tmp_path: Path) -> None:
    market, ctx, broker, cp, exit_at = await exit_run(tmp_path, StuckSells)
    broker.stuck = None
    for n in range(1, exit_at + 4):
        market.advance()
        broker.stuck_sells = n >= exit_at
        await TradingSession(ctx, cp).step()
    assert len(market_sells(broker)) == 1
    broker.stuck_sells = False
    for _ in range(2):
        market.advance()
        await TradingSession(ctx, cp).step()
    assert len(market_sells(broker)) == 1
    assert cp["session"]["pending_exits"] == {}


async def test_liquidation_leaves_no_stale_pending_exit(tmp_path: Path) -> None:
    """A pending exit whose position went flat by the fill of its own (executing) sell, seen in Liquidating."""
    market = ScriptedMarket(CLOSES_EXIT)
    ctx, _, _ = make_context(market, tmp_path, stopLossPct=20)
    broker = StuckSells(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    broker.stuck = None
    ctx.orders = broker
    cp: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 108.0}}
    books = OrderLifecycle(ctx, cp, await market.load_markets(), flush=_nothing)
    await books.buy(SYMBOL, 1.0, T0)
    broker.stuck_sells = True
    await books.sell(SYMBOL, "signal", T0 + TF)  # sent, executing
    await books.sell(SYMBOL, "signal", T0 + 2 * TF)  # the next exit signal: busy -> pending
    assert SYMBOL in cp["pending_exits"]
    broker.stuck_sells = False
    assert await books.reconcile() is None
    await books.refresh_stops()
    await books.close_all("liquidation")
    assert not books.holds_anything()
    assert cp["pending_exits"] == {}, f"stale: {cp['pending_exits']}"


async def test_the_rest_of_a_partly_filled_exit_is_sold_on_the_retry(tmp_path: Path) -> None:
    """An exit sent but only partly executed (cancelled after the execution limit) stays pending until flat."""
    market = ScriptedMarket(CLOSES_EXIT)
    ctx, _, _ = make_context(market, tmp_path, stopLossPct=20)

    class HalfThenCancel(StuckSells):
        async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order:
            order = self._get(symbol, client_order_id)
            if order.type == "market":
                self.stuck_sells = False
                half = order.amount / 2
                return order.model_copy(
                    update={"status": "canceled", "filled": half, "cost": order.cost / 2, "fees": ()}
                )
            return await super().cancel_order(symbol, client_order_id=client_order_id)

    broker = HalfThenCancel(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0, slippage_bps=0))
    broker.stuck = None
    ctx.orders = broker
    now = [1_000_000]
    cp: dict[str, Any] = {"cash": 10_000.0, "last_prices": {SYMBOL: 108.0}}
    books = OrderLifecycle(ctx, cp, await market.load_markets(), flush=_nothing, wall_ms=lambda: now[0])
    await books.buy(SYMBOL, 1.0, T0)
    broker.stuck_sells = True
    await books.sell(SYMBOL, "signal", T0 + TF)
    now[0] += MARKET_EXECUTION_LIMIT_MS + 1
    await books.reconcile()
    assert books.position(SYMBOL).amount == pytest.approx(0.5)
    assert SYMBOL in cp["pending_exits"]  # the rest of the exit decision stays
    await books.retry_pending_exits()
    assert books.position(SYMBOL).amount == 0
    assert cp["pending_exits"] == {}

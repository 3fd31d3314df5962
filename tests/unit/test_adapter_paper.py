"""The paper broker: fills against (fake) real prices by the simulator's fill model, with fees and partial fills;
deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from traiding.domain.candles import Candles
from traiding.domain.orderbook import BookModel
from traiding.domain.pricepath import PricePath
from traiding_adapters.client_ids import client_order_id
from traiding_adapters.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from traiding_adapters.exchange import OrderBook, OrderRequest, Ticker
from traiding_adapters.paper import FINEST_STEP, KEPT_FINISHED_ORDERS, PaperBroker, PaperSettings


class FakeMarket:
    """Market data as the exchange would give it; the test moves the price."""

    def __init__(self) -> None:
        self.bid = 99.0
        self.ask = 101.0
        self.depth = 1.0  # amount per level
        self.calls = 0

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self.calls += 1
        return Ticker(symbol=symbol, timestamp=0, bid=self.bid, ask=self.ask, last=(self.bid + self.ask) / 2)

    async def fetch_order_book(self, symbol: str, limit: int = 100) -> OrderBook:
        self.calls += 1
        bids = tuple((self.bid - i, self.depth) for i in range(3))
        asks = tuple((self.ask + i, self.depth) for i in range(3))
        return OrderBook(symbol=symbol, timestamp=0, bids=bids, asks=asks)


def market_order(side: str, amount: float, seq: int) -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT",
        side=side,
        type="market",
        amount=amount,
        client_order_id=client_order_id("run-1", str(seq)),
    )


def broker(market: FakeMarket, **settings: float) -> PaperBroker:
    return PaperBroker(market, {"USDT": 10_000.0}, PaperSettings(**settings), clock_ms=lambda: 0)  # type: ignore[arg-type]


class TickerOnlyMarket(FakeMarket):
    async def fetch_order_book(self, symbol: str, limit: int = 100) -> OrderBook:
        return OrderBook(symbol=symbol, timestamp=0, bids=(), asks=())


async def test_a_market_buy_pays_the_books_price_and_the_fee_with_no_slippage_on_top() -> None:
    paper = broker(FakeMarket(), fee_rate=0.001, slippage_bps=10)
    order = await paper.create_order(market_order("buy", 0.5, 0))
    assert order.average == pytest.approx(101.0)  # the book is the slippage


async def test_without_a_book_a_market_buy_pays_the_ticker_price_slippage_and_fee() -> None:
    market = TickerOnlyMarket()
    paper = broker(market, fee_rate=0.001, slippage_bps=10)
    order = await paper.create_order(market_order("buy", 0.5, 0))
    expected_price = 101.0 * 1.001
    assert order.status == "closed"
    assert order.filled == pytest.approx(0.5)
    assert order.average == pytest.approx(expected_price)
    assert order.fee_in("USDT") == pytest.approx(0.5 * expected_price * 0.001)
    balances = await paper.fetch_balances()
    assert balances["BTC"].free == pytest.approx(0.5)
    assert balances["USDT"].free == pytest.approx(10_000 - 0.5 * expected_price * 1.001)
    positions = await paper.fetch_positions()
    assert positions["BTC/USDT"].amount == pytest.approx(0.5)
    assert positions["BTC/USDT"].average_entry == pytest.approx(expected_price)


async def test_market_order_walks_the_book_and_partially_fills_beyond_its_depth() -> None:
    market = FakeMarket()
    paper = broker(market, fee_rate=0.0, slippage_bps=0)
    order = await paper.create_order(market_order("buy", 5.0, 0))  # the book holds 3 x 1.0
    assert order.status == "expired"
    assert order.filled == pytest.approx(3.0)
    assert order.remaining == pytest.approx(2.0)
    assert order.average == pytest.approx((101 + 102 + 103) / 3)


async def test_sell_round_trip_realises_the_spread_and_fees() -> None:
    market = FakeMarket()
    paper = broker(market, fee_rate=0.001, slippage_bps=0)
    await paper.create_order(market_order("buy", 1.0, 0))
    await paper.create_order(market_order("sell", 1.0, 1))
    balances = await paper.fetch_balances()
    assert balances["BTC"].free == pytest.approx(0.0)
    assert balances["USDT"].free == pytest.approx(10_000 - 101 * 1.001 + 99 * 0.999)
    assert await paper.fetch_positions() == {}


async def test_seeded_partial_fills_are_deterministic() -> None:
    async def run(seed: int) -> list[float]:
        paper = broker(FakeMarket(), partial_fill_probability=0.5, min_fill_ratio=0.2, seed=seed)
        return [(await paper.create_order(market_order("buy", 0.5, i))).filled for i in range(20)]

    first = await run(42)
    assert first == await run(42)
    assert first != await run(43)
    assert any(f < 0.5 for f in first)
    assert any(f == pytest.approx(0.5) for f in first)
    assert all(0.1 - 1e-12 <= f <= 0.5 for f in first)


async def test_same_client_order_id_returns_the_same_order() -> None:
    paper = broker(FakeMarket())
    first = await paper.create_order(market_order("buy", 0.1, 7))
    again = await paper.create_order(market_order("buy", 0.1, 7))
    assert again == first
    assert (await paper.fetch_balances())["BTC"].free == pytest.approx(0.1)


async def test_limit_order_rests_reserves_funds_and_fills_when_the_market_crosses() -> None:
    market = FakeMarket()
    paper = broker(market, fee_rate=0.001)
    request = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=1.0, price=95.0, client_order_id="lim-1")
    order = await paper.create_order(request)
    assert order.status == "open"
    balances = await paper.fetch_balances()
    assert balances["USDT"].used == pytest.approx(95.0 * 1.001)
    market.bid, market.ask = 93.0, 94.0
    filled = await paper.fetch_order("BTC/USDT", client_order_id="lim-1")
    assert filled.status == "closed"
    assert filled.average == pytest.approx(94.0)  # the market crossed below the limit
    balances = await paper.fetch_balances()
    assert balances["USDT"].used == pytest.approx(0.0)
    assert balances["USDT"].free == pytest.approx(10_000 - 94.0 * 1.001)


async def test_cancel_releases_the_reservation() -> None:
    paper = broker(FakeMarket())
    request = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=1.0, price=50.0, client_order_id="lim-2")
    await paper.create_order(request)
    cancelled = await paper.cancel_order("BTC/USDT", client_order_id="lim-2")
    assert cancelled.status == "canceled"
    balances = await paper.fetch_balances()
    assert balances["USDT"].free == pytest.approx(10_000)
    with pytest.raises(OrderNotFound):
        await paper.cancel_order("BTC/USDT", client_order_id="lim-2")


async def test_insufficient_funds() -> None:
    paper = broker(FakeMarket())
    too_big = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=1000, price=100.0, client_order_id="x-1")
    with pytest.raises(InsufficientFunds, match="USDT"):
        await paper.create_order(too_big)
    with pytest.raises(InsufficientFunds, match="BTC"):
        await paper.create_order(market_order("sell", 1.0, 1))


async def test_unknown_order_and_bad_requests() -> None:
    paper = broker(FakeMarket())
    with pytest.raises(OrderNotFound):
        await paper.fetch_order("BTC/USDT", client_order_id="nope")
    with pytest.raises(InvalidOrder):
        await paper.create_order(
            OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=1, client_order_id="no-price")
        )


async def test_a_restored_snapshot_continues_exactly_where_the_account_was() -> None:
    market = FakeMarket()
    original = broker(market, partial_fill_probability=0.5, min_fill_ratio=0.2, seed=3)
    for i in range(5):
        await original.create_order(market_order("buy", 0.4, i))
    limit = OrderRequest(
        symbol="BTC/USDT",
        side="buy",
        type="limit",
        amount=0.1,
        price=50.0,
        client_order_id=client_order_id("run-1", "9"),
    )
    await original.create_order(limit)  # rests, reserving funds
    saved = json.loads(json.dumps(original.snapshot()))  # what the checkpoint stores

    restored = broker(FakeMarket(), partial_fill_probability=0.5, min_fill_ratio=0.2, seed=999)
    restored.restore(saved)
    assert await restored.fetch_balances() == await original.fetch_balances()
    assert await restored.fetch_positions() == await original.fetch_positions()
    assert await restored.fetch_order("BTC/USDT", client_order_id=limit.client_order_id) == await original.fetch_order(
        "BTC/USDT", client_order_id=limit.client_order_id
    )
    # The same dice and ids from here on: both accounts fill the next orders identically.
    after_original = [await original.create_order(market_order("buy", 0.4, i)) for i in range(10, 14)]
    after_restored = [await restored.create_order(market_order("buy", 0.4, i)) for i in range(10, 14)]
    assert [(o.id, o.filled) for o in after_original] == [(o.id, o.filled) for o in after_restored]
    # Cancelling the restored resting order gives its reserved funds back.
    await restored.cancel_order("BTC/USDT", client_order_id=limit.client_order_id)
    assert (await restored.fetch_balances())["USDT"].used == pytest.approx(0.0)


async def test_a_snapshot_keeps_open_orders_and_only_the_recent_finished_ones() -> None:
    market = FakeMarket()
    market.depth = 1e9
    paper = broker(market)
    for i in range(120):
        await paper.create_order(market_order("buy", 0.001, i))
    resting = OrderRequest(
        symbol="BTC/USDT",
        side="buy",
        type="limit",
        amount=0.1,
        price=1.0,
        client_order_id=client_order_id("run-1", "999"),
    )
    await paper.create_order(resting)
    kept = {o["client_order_id"] for o in paper.snapshot()["orders"]}
    assert resting.client_order_id in kept
    assert len(kept) == KEPT_FINISHED_ORDERS + 1
    assert client_order_id("run-1", "119") in kept and client_order_id("run-1", "0") not in kept


class CandleMarket(FakeMarket):
    """Market data with candles (closing at their open, 1000 traded each): the broker replays resting orders."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000 * 60_000
        self.rows: list[tuple[int, float, float, float]] = []  # (time, open, low, high)
        self.volume = 1000.0

    async def fetch_ticker(self, symbol: str) -> Ticker:
        ticker = await super().fetch_ticker(symbol)
        return ticker.model_copy(update={"timestamp": self.now})

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        rows = [r for r in self.rows if since_ms <= r[0] < until_ms]
        t, o, lo, h = (np.array([r[i] for r in rows]) for i in range(4))
        volume = np.full(len(rows), self.volume)
        return Candles(t.astype(np.int64), o.astype(float), h.astype(float), lo.astype(float), o.astype(float), volume)

    async def fetch_recent_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        return await self.fetch_ohlcv(symbol, timeframe, since_ms, until_ms)


def stop_order(stop: float, limit: float, amount: float = 1.0, coid: str = "stop-1") -> OrderRequest:
    return OrderRequest(
        symbol="BTC/USDT",
        side="sell",
        type="stop_loss_limit",
        amount=amount,
        price=limit,
        stop_price=stop,
        client_order_id=coid,
    )


async def holding(market: FakeMarket) -> PaperBroker:
    paper = PaperBroker(market, {"USDT": 0.0, "BTC": 1.0}, PaperSettings(fee_rate=0.001, slippage_bps=0))
    return paper


async def test_a_stop_rests_reserving_its_amount_until_the_price_reaches_it() -> None:
    market = FakeMarket()
    paper = await holding(market)
    placed = await paper.create_order(stop_order(95.0, 94.0))
    assert (placed.status, placed.stop_price) == ("open", 95.0)
    assert (await paper.fetch_balances())["BTC"].free == pytest.approx(0.0)
    assert (await paper.fetch_order("BTC/USDT", client_order_id="stop-1")).status == "open"
    market.bid, market.ask = 94.5, 95.5  # through the stop, above the limit
    filled = await paper.fetch_order("BTC/USDT", client_order_id="stop-1")
    assert filled.status == "closed"
    assert filled.average == pytest.approx(94.5)
    balances = await paper.fetch_balances()
    assert balances["USDT"].free == pytest.approx(94.5 * 0.999)
    assert balances["BTC"].total == pytest.approx(0.0)


async def test_a_stop_fills_at_the_candle_that_crossed_it_while_nobody_asked() -> None:
    market = CandleMarket()
    paper = await holding(market)
    await paper.create_order(stop_order(95.0, 94.0))
    minute = 60_000
    market.rows = [(market.now + k * minute, 100.0, 99.0, 101.0) for k in range(1, 5)]
    market.rows.append((market.now + 5 * minute, 99.0, 90.0, 99.5))  # through the stop (and the limit)
    market.rows.append((market.now + 6 * minute, 96.0, 95.5, 97.0))
    market.now += 7 * minute  # back above the stop by the time anyone looks
    filled = await paper.fetch_order("BTC/USDT", client_order_id="stop-1")
    assert filled.status == "closed"
    # triggered where the path of the crossing candle (99 -> 90 -> 99.5 -> 99) fell to 95, and sold into the book
    # the simulator would show at that moment, shaped by the candle before: at its best bid, just under the stop
    candles = await market.fetch_ohlcv("BTC/USDT", "1m", 0, market.now)
    path = PricePath(candles, minute)
    crossed = path.first_crossing(market.rows[4][0], market.now, 95.0, falling=True)
    assert crossed == market.rows[4][0] + -(-4 * minute // 27)
    book = BookModel().book_at("BTC/USDT", path, crossed, tick=FINEST_STEP, step=FINEST_STEP, depth=100)
    assert filled.average == pytest.approx(float(book.bids[0].price)) and 94.9 < (filled.average or 0) < 95.0
    assert filled.last_trade_timestamp == crossed


async def test_a_stop_that_gaps_below_its_limit_rests_as_a_limit_sell() -> None:
    market = CandleMarket()
    paper = await holding(market)
    await paper.create_order(stop_order(95.0, 94.0))
    minute = 60_000
    market.rows = [(market.now + minute, 92.0, 91.0, 93.0)]  # opens below the limit
    market.now += 2 * minute
    market.bid, market.ask = 92.0, 93.0
    assert (await paper.fetch_order("BTC/USDT", client_order_id="stop-1")).status == "open"
    restored = PaperBroker(market, {}, PaperSettings(fee_rate=0.001, slippage_bps=0))
    restored.restore(json.loads(json.dumps(paper.snapshot())))  # triggered state survives a restart
    market.rows.append((market.now + minute, 93.0, 92.5, 94.5))  # climbs back through the limit
    market.now += 2 * minute
    filled = await restored.fetch_order("BTC/USDT", client_order_id="stop-1")
    assert filled.status == "closed"
    assert filled.average == pytest.approx(94.0)


async def test_stops_that_would_trigger_now_or_buy_are_refused() -> None:
    paper = await holding(FakeMarket())
    with pytest.raises(InvalidOrder, match="triggers now"):
        await paper.create_order(stop_order(100.0, 99.0))
    buy = stop_order(105.0, 106.0).model_copy(update={"side": "buy"})
    with pytest.raises(InvalidOrder, match="sells only"):
        await paper.create_order(buy)
    assert paper.late_order_window_ms == 0

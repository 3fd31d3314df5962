"""A paper broker for dry runs: the order half of `Exchange`, filled against REAL market prices.

Prices come from the underlying exchange (order book, else ticker); the account is simulated in memory and
the real account is never touched (the broker only ever calls the market-data methods).

Fill model, deterministic for a given seed and market data:
- market orders walk the real order book's levels (a buy takes the asks) and pay `slippage_bps` on top of
  each level's price; what the book's depth cannot fill is cancelled (IOC), giving a partial fill;
- optionally (`partial_fill_probability`) a seeded draw fills only a fraction in
  [`min_fill_ratio`, 1) of an order the book could fill, standing for queue position and latency;
- limit orders fill at their limit price (or better) when the market crosses them, checked on creation and
  on every `fetch_order` / `poll`; until then they reserve funds;
- stop_loss_limit sells (the protective stop of a position) rest with their amount reserved; they trigger
  when the market's candles since they were placed reach the stop (also while nobody asked: the next look
  replays the path), then fill at the stop, or at the candle's open when it gapped below the stop, unless that
  is below the limit price: then the order rests as a limit sell at its limit price;
- fees are `fee_rate` of the notional, paid in the quote currency.
Client order ids work as on the exchange: creating an order whose id exists returns that order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from traiding.domain.timeframes import timeframe_ms
from traiding_adapters.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from traiding_adapters.exchange import (
    Balance,
    CandleData,
    Fee,
    MarketData,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    Position,
)
from traiding_adapters.observer import NULL_OBSERVER, ExchangeObserver, observe_order

_EPSILON = 1e-12
KEPT_FINISHED_ORDERS = 50  # finished orders a snapshot keeps for lookups by client order id


@dataclass(frozen=True)
class PaperSettings:
    fee_rate: float = 0.001
    slippage_bps: float = 5.0
    partial_fill_probability: float = 0.0
    min_fill_ratio: float = 0.3
    book_depth: int = 100
    seed: int = 0
    candle_timeframe: str = "1m"  # candles a resting stop is checked against (the run's timeframe)


@dataclass
class _Account:
    free: dict[str, float]
    used: dict[str, float]


class PaperBroker:
    """Simulated orders against real prices (see module doc). Implements `traiding_adapters.exchange.OrderApi`."""

    def __init__(
        self,
        market_data: MarketData,
        initial_balances: dict[str, float],
        settings: PaperSettings | None = None,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        observer: ExchangeObserver = NULL_OBSERVER,
        exchange_id: str = "paper",
    ) -> None:
        self._market = market_data
        self._observer = observer
        self._exchange_id = exchange_id  # the exchange whose prices fill the orders (a metrics label)
        self.settings = settings or PaperSettings()
        self._rng = random.Random(self.settings.seed)
        self._clock_ms = clock_ms
        self._account = _Account(free=dict(initial_balances), used={})
        self._orders: dict[str, Order] = {}
        self._reserved: dict[str, tuple[str, float]] = {}  # client order id -> (currency, amount reserved)
        self._positions: dict[str, Position] = {}
        self._next_id = 1
        # stop orders: the market time they were placed (checked from there), and when they triggered
        self._stop_since: dict[str, int] = {}
        self._triggered: dict[str, int] = {}

    # -- OrderApi --------------------------------------------------------------------------------------

    async def fetch_balances(self) -> dict[str, Balance]:
        currencies = set(self._account.free) | set(self._account.used)
        return {
            c: Balance(
                currency=c,
                free=self._account.free.get(c, 0.0),
                used=self._account.used.get(c, 0.0),
                total=self._account.free.get(c, 0.0) + self._account.used.get(c, 0.0),
            )
            for c in sorted(currencies)
        }

    async def fetch_positions(self) -> dict[str, Position]:
        return {symbol: p for symbol, p in self._positions.items() if p.amount > _EPSILON}

    async def create_order(self, request: OrderRequest) -> Order:
        existing = self._orders.get(request.client_order_id)
        if existing is not None:
            return existing  # the same id names the same order, as on the exchange
        if request.amount <= 0:
            raise InvalidOrder(f"order amount must be positive, got {request.amount}")
        if request.type == "limit" and (request.price is None or request.price <= 0):
            raise InvalidOrder("a limit order needs a positive price")
        base, quote = _split(request.symbol)
        submitted = time.perf_counter()
        if request.type == "market":
            order = await self._fill_market(request, base, quote)
        elif request.type == "stop_loss_limit":
            order = await self._place_stop(request, base, quote)
        else:
            order = await self._place_limit(request, base, quote)
        self._orders[request.client_order_id] = order
        observe_order(self._observer, self._exchange_id, "dry-run", submitted, order)
        return order

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> Order:
        order = self._get(symbol, client_order_id)
        if order.status == "open":
            order = await self._try_fill(order)
        return order

    async def supports_protective_stops(self, symbol: str) -> bool:
        return True

    @property
    def late_order_window_ms(self) -> int:
        return 0  # the account is restored with the run's checkpoint: an order it does not know was never placed

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order:
        order = self._get(symbol, client_order_id)
        if order.status != "open":
            raise OrderNotFound(f"paper order {client_order_id} is {order.status}, not open: nothing to cancel")
        self._unreserve(client_order_id)
        self._stop_since.pop(client_order_id, None)
        self._triggered.pop(client_order_id, None)
        cancelled = order.model_copy(update={"status": "canceled"})
        self._orders[client_order_id] = cancelled
        return cancelled

    async def poll(self) -> list[Order]:
        """Check every open limit and stop order against the market; returns those that filled."""
        filled = []
        for order in list(self._orders.values()):
            if order.status == "open":
                updated = await self._try_fill(order)
                if updated.status == "closed":
                    filled.append(updated)
        return filled

    # -- persistence -----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole paper account as plain JSON, for the run's checkpoint (a dry run survives a restart)."""
        version, internal, gauss = self._rng.getstate()
        return {
            "free": dict(self._account.free),
            "used": dict(self._account.used),
            "orders": [order.model_dump() for order in self._kept_orders()],
            "reserved": {cid: list(pair) for cid, pair in self._reserved.items()},
            "positions": [position.model_dump() for position in self._positions.values()],
            "next_id": self._next_id,
            "rng": [version, list(internal), gauss],
            "stop_since": dict(self._stop_since),
            "triggered": dict(self._triggered),
        }

    def _kept_orders(self) -> list[Order]:
        """Open orders and the most recent finished ones: enough to resolve any order a restart may ask about,
        while a long session's checkpoint stays small (it lives in the object's status)."""
        orders = list(self._orders.values())
        recent = {o.client_order_id for o in [o for o in orders if o.status != "open"][-KEPT_FINISHED_ORDERS:]}
        return [o for o in orders if o.status == "open" or o.client_order_id in recent]

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a `snapshot`: balances, orders (by client order id), positions and the fill dice."""
        self._account = _Account(free=dict(state["free"]), used=dict(state["used"]))
        self._orders = {o["client_order_id"]: Order.model_validate(o) for o in state["orders"]}
        self._reserved = {cid: (pair[0], float(pair[1])) for cid, pair in state["reserved"].items()}
        self._positions = {p["symbol"]: Position.model_validate(p) for p in state["positions"]}
        self._next_id = int(state["next_id"])
        self._stop_since = {cid: int(t) for cid, t in state.get("stop_since", {}).items()}
        self._triggered = {cid: int(t) for cid, t in state.get("triggered", {}).items()}
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))

    # -- fills -----------------------------------------------------------------------------------------

    async def _fill_market(self, request: OrderRequest, base: str, quote: str) -> Order:
        book = await self._book(request.symbol)
        levels = book.asks if request.side == "buy" else book.bids
        slip = self.settings.slippage_bps / 10_000
        target = request.amount * self._fill_ratio()
        filled = 0.0
        cost = 0.0
        for price, size in levels:
            if filled >= target - _EPSILON:
                break
            take = min(size, target - filled)
            fill_price = price * (1 + slip) if request.side == "buy" else price * (1 - slip)
            filled += take
            cost += take * fill_price
        if filled <= _EPSILON:
            raise InvalidOrder(f"no liquidity in the {request.symbol} order book for a market {request.side}")
        fee = cost * self.settings.fee_rate
        self._settle(request, filled, cost, fee)
        # a market order's unfilled rest is cancelled (IOC), as Binance reports it: EXPIRED
        status: OrderStatus = "closed" if filled >= request.amount - _EPSILON else "expired"
        return self._order(request, status=status, filled=filled, cost=cost, fee=fee, quote=quote)

    async def _place_limit(self, request: OrderRequest, base: str, quote: str) -> Order:
        assert request.price is not None
        price = request.price
        if request.side == "buy":
            need = request.amount * price * (1 + self.settings.fee_rate)
            self._reserve(request.client_order_id, quote, need)
        else:
            self._reserve(request.client_order_id, base, request.amount)
        order = self._order(request, status="open", filled=0.0, cost=0.0, fee=0.0, quote=quote)
        return await self._try_fill_limit(order)

    async def _place_stop(self, request: OrderRequest, base: str, quote: str) -> Order:
        if request.side != "sell":
            raise InvalidOrder("the paper broker rests stop_loss_limit sells only (protective stops of long positions)")
        if request.stop_price is None or request.stop_price <= 0 or request.price is None or request.price <= 0:
            raise InvalidOrder("a stop_loss_limit order needs a positive stop price and limit price")
        ticker = await self._market.fetch_ticker(request.symbol)
        reference = ticker.bid if ticker.bid is not None else ticker.last
        if reference is not None and reference <= request.stop_price:
            raise InvalidOrder(f"stop {request.stop_price:g} is at or above the market {reference:g}: it triggers now")
        self._reserve(request.client_order_id, base, request.amount)
        self._stop_since[request.client_order_id] = int(ticker.timestamp or self._clock_ms())
        return self._order(request, status="open", filled=0.0, cost=0.0, fee=0.0, quote=quote)

    async def _try_fill(self, order: Order) -> Order:
        if order.type == "stop_loss_limit":
            return await self._try_fill_stop(order)
        return await self._try_fill_limit(order)

    async def _try_fill_stop(self, order: Order) -> Order:
        """Replay the market since the stop was placed (or triggered): the first candle that reaches the stop
        triggers it; it fills at the stop (the candle's open if it gapped lower) unless that is below the limit."""
        coid = order.client_order_id or ""
        assert order.stop_price is not None and order.price is not None
        ticker = await self._market.fetch_ticker(order.symbol)
        now = int(ticker.timestamp or self._clock_ms())
        since = self._triggered.get(coid, self._stop_since.get(coid, now))
        tf = timeframe_ms(self.settings.candle_timeframe)
        points: list[tuple[int, float, float, float]] = []  # (time, open, low, high) of each candle after `since`
        if isinstance(self._market, CandleData):
            candles = await self._market.fetch_recent_ohlcv(
                order.symbol, self.settings.candle_timeframe, since, now + tf
            )
            points = [
                (int(t), float(o), float(lo), float(h))
                for t, o, lo, h in zip(candles.time, candles.open, candles.low, candles.high, strict=True)
                if t >= since
            ]
        bid = ticker.bid if ticker.bid is not None else ticker.last
        if bid is not None:
            points.append((now, bid, bid, bid))
        for at, open_, low, high in points:
            if coid not in self._triggered:
                if low > order.stop_price:
                    continue
                self._triggered[coid] = at
                price = min(open_, order.stop_price)
                if price >= order.price:
                    return self._fill_stop(order, price, at)
            if high >= order.price:  # triggered earlier below its limit: a resting limit sell at the limit
                return self._fill_stop(order, order.price, at)
        if coid not in self._triggered:
            # Checked up to now: the next look starts at the candle still forming instead of replaying the
            # whole life of the position.
            self._stop_since[coid] = max(since, now - tf)
        return order

    def _fill_stop(self, order: Order, price: float, at: int) -> Order:
        coid = order.client_order_id or order.id
        fill_price = price * (1 - self.settings.slippage_bps / 10_000)
        cost = order.amount * fill_price
        fee = cost * self.settings.fee_rate
        self._unreserve(coid)
        request = OrderRequest(
            symbol=order.symbol, side="sell", type="limit", amount=order.amount, price=order.price, client_order_id=coid
        )
        self._settle(request, order.amount, cost, fee)
        self._stop_since.pop(coid, None)
        self._triggered.pop(coid, None)
        filled = order.model_copy(
            update={
                "status": "closed",
                "filled": order.amount,
                "remaining": 0.0,
                "average": fill_price,
                "cost": cost,
                "fees": (Fee(currency=_split(order.symbol)[1], cost=fee),),
                "last_trade_timestamp": at,
            }
        )
        self._orders[coid] = filled
        return filled

    async def _try_fill_limit(self, order: Order) -> Order:
        if order.type != "limit" or order.price is None:
            return order
        ticker = await self._market.fetch_ticker(order.symbol)
        reference = ticker.ask if order.side == "buy" else ticker.bid
        reference = reference if reference is not None else ticker.last
        if reference is None:
            return order
        crossed = reference <= order.price if order.side == "buy" else reference >= order.price
        if not crossed:
            return order
        # a resting order fills at its own price; one that was marketable on arrival at the better market
        fill_price = min(order.price, reference) if order.side == "buy" else max(order.price, reference)
        amount = order.remaining
        cost = amount * fill_price
        fee = cost * self.settings.fee_rate
        quote = _split(order.symbol)[1]
        self._unreserve(order.client_order_id or "")
        request = OrderRequest(
            symbol=order.symbol,
            side=order.side,
            type="limit",
            amount=amount,
            price=order.price,
            client_order_id=order.client_order_id or order.id,
        )
        self._settle(request, amount, cost, fee)
        filled = order.model_copy(
            update={
                "status": "closed",
                "filled": order.filled + amount,
                "remaining": 0.0,
                "average": fill_price,
                "cost": order.cost + cost,
                "fees": (Fee(currency=quote, cost=order.fee_in(quote) + fee),),
            }
        )
        if order.client_order_id:
            self._orders[order.client_order_id] = filled
        return filled

    # -- bookkeeping -----------------------------------------------------------------------------------

    def _settle(self, request: OrderRequest, amount: float, cost: float, fee: float) -> None:
        base, quote = _split(request.symbol)
        free = self._account.free
        if request.side == "buy":
            if free.get(quote, 0.0) + _EPSILON < cost + fee:
                raise InsufficientFunds(
                    f"paper account has {free.get(quote, 0.0):.8g} {quote} free, the buy needs {cost + fee:.8g}"
                )
            free[quote] = free.get(quote, 0.0) - cost - fee
            free[base] = free.get(base, 0.0) + amount
            self._add_position(request.symbol, amount, cost / amount)
        else:
            if free.get(base, 0.0) + _EPSILON < amount:
                raise InsufficientFunds(
                    f"paper account has {free.get(base, 0.0):.8g} {base} free, the sell needs {amount:.8g}"
                )
            free[base] = free.get(base, 0.0) - amount
            free[quote] = free.get(quote, 0.0) + cost - fee
            self._add_position(request.symbol, -amount, cost / amount)

    def _add_position(self, symbol: str, delta: float, price: float) -> None:
        current = self._positions.get(symbol, Position(symbol=symbol, amount=0.0, average_entry=0.0))
        amount = current.amount + delta
        if delta > 0:
            average = (current.amount * current.average_entry + delta * price) / amount
        else:
            average = current.average_entry if amount > _EPSILON else 0.0
        self._positions[symbol] = Position(symbol=symbol, amount=max(amount, 0.0), average_entry=average)

    def _reserve(self, client_order_id: str, currency: str, amount: float) -> None:
        free = self._account.free.get(currency, 0.0)
        if free + _EPSILON < amount:
            raise InsufficientFunds(f"paper account has {free:.8g} {currency} free, the order needs {amount:.8g}")
        self._account.free[currency] = free - amount
        self._account.used[currency] = self._account.used.get(currency, 0.0) + amount
        self._reserved[client_order_id] = (currency, amount)

    def _unreserve(self, client_order_id: str) -> None:
        reserved = self._reserved.pop(client_order_id, None)
        if reserved is not None:
            currency, amount = reserved
            self._account.used[currency] = self._account.used.get(currency, 0.0) - amount
            self._account.free[currency] = self._account.free.get(currency, 0.0) + amount

    def _fill_ratio(self) -> float:
        probability = self.settings.partial_fill_probability
        if probability <= 0:
            return 1.0
        if self._rng.random() >= probability:
            return 1.0
        return self.settings.min_fill_ratio + (1 - self.settings.min_fill_ratio) * self._rng.random()

    async def _book(self, symbol: str) -> OrderBook:
        book = await self._market.fetch_order_book(symbol, self.settings.book_depth)
        if book.asks and book.bids:
            return book
        ticker = await self._market.fetch_ticker(symbol)
        # no book: one deep level at the ticker's prices
        ask = ticker.ask or ticker.last
        bid = ticker.bid or ticker.last
        if ask is None or bid is None:
            raise InvalidOrder(f"no price for {symbol} on the market data source")
        deep = float("inf")
        return OrderBook(symbol=symbol, timestamp=ticker.timestamp, bids=((bid, deep),), asks=((ask, deep),))

    def _order(
        self, request: OrderRequest, *, status: OrderStatus, filled: float, cost: float, fee: float, quote: str
    ) -> Order:
        return Order(
            id=f"paper-{self._take_id()}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            status=status,
            amount=request.amount,
            filled=filled,
            remaining=max(request.amount - filled, 0.0),
            price=request.price,
            stop_price=request.stop_price,
            average=cost / filled if filled > 0 else None,
            cost=cost,
            fees=(Fee(currency=quote, cost=fee),) if fee else (),
            timestamp=self._clock_ms(),
        )

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _get(self, symbol: str, client_order_id: str) -> Order:
        order = self._orders.get(client_order_id)
        if order is None or order.symbol != symbol:
            raise OrderNotFound(f"paper order {client_order_id} for {symbol} does not exist")
        return order


def _split(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    if not base or not quote:
        raise InvalidOrder(f"symbol {symbol!r} must look like BASE/QUOTE, e.g. BTC/USDT")
    return base, quote.split(":")[0]

"""A paper broker for dry runs: the order half of `Exchange`, filled against REAL market prices.

Prices come from the underlying exchange; the account is simulated in memory and the real account is never
touched (the broker only ever calls the market-data methods). Orders fill by the fill model the exchange
simulator uses (`traiding.domain.orderbook`), so a dry run and a live run against the simulator agree:
- market orders walk the exchange's order book level by level at each level's price (the book is the
  slippage); what its depth cannot fill expires, giving a partial fill. Only a market without a book (a ticker
  alone) is filled at the ticker's price plus `slippage_bps`;
- optionally (`partial_fill_probability`) a seeded draw fills only a fraction in [`min_fill_ratio`, 1) of an
  order the book could fill, standing for queue position and latency;
- limit orders take what their price crosses in the book at once; the rest rests with its funds reserved and
  fills as a maker at its price, at the moment the market's candles reached it, with the volume that traded
  there (`orderbook.resting_fill`: a large order fills over several candles);
- stop_loss_limit sells (the protective stop of a position) rest with their amount reserved; they trigger at the
  moment the candles' price path (`traiding.domain.pricepath`) reaches the stop, also while nobody asked, and
  then meet the book of that moment as the simulator models it from the candles (`orderbook.BookModel`); what
  their limit does not reach rests as a limit sell. Resting orders are decided on closed candles only: the path
  of a forming candle is not known yet;
- fees are `fee_rate` of the notional, paid in the quote currency.
Without candles (market data that has none) resting orders fill when the ticker crosses them.
Client order ids work as on the exchange: creating an order whose id exists returns that order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from traiding.domain.orderbook import Book, BookModel, Fill, Level, Side, execute, resting_fill
from traiding.domain.pricepath import PricePath
from traiding.domain.timeframes import timeframe_ms
from traiding_adapters.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from traiding_adapters.exchange import (
    Balance,
    CandleData,
    Fee,
    Market,
    MarketData,
    Order,
    OrderBook,
    OrderRequest,
    OrderSide,
    OrderStatus,
    Position,
)
from traiding_adapters.observer import NULL_OBSERVER, ExchangeObserver, observe_order

_EPSILON = 1e-12
KEPT_FINISHED_ORDERS = 50  # finished orders a snapshot keeps for lookups by client order id
FINEST_STEP = Decimal("0.00000001")  # amounts where the market's lot step is not known (Binance's precision)


@runtime_checkable
class MarketRules(Protocol):
    async def load_markets(self) -> dict[str, Market]: ...


@dataclass(frozen=True)
class PaperSettings:
    fee_rate: float = 0.001
    slippage_bps: float = 5.0  # only where the market has no order book: otherwise the book is the slippage
    partial_fill_probability: float = 0.0
    min_fill_ratio: float = 0.3
    book_depth: int = 100
    seed: int = 0
    candle_timeframe: str = "1m"  # candles resting orders are checked against (the run's timeframe)
    book_model: BookModel = field(default_factory=BookModel)  # the book at a past moment, modelled from candles


@dataclass
class _Account:
    free: dict[str, float]
    used: dict[str, float]


@dataclass(frozen=True)
class _Grid:
    tick: Decimal | None
    step: Decimal
    decimals: int | None


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
        self._rng = random.Random(self.settings.seed)  # nosec B311  # seeded simulated fills, no secret
        self._clock_ms = clock_ms
        self._account = _Account(free=dict(initial_balances), used={})
        self._orders: dict[str, Order] = {}
        self._reserved: dict[str, tuple[str, float]] = {}  # client order id -> (currency, amount reserved)
        self._positions: dict[str, Position] = {}
        self._next_id = 1
        # resting orders: the market time from which their candles are still to be looked at; stops: when they
        # triggered
        self._watch: dict[str, int] = {}
        self._triggered: dict[str, int] = {}
        self._grids: dict[str, _Grid] = {}

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
            order = await self._fill_market(request, quote)
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
            order = await self._advance(order)
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
        self._watch.pop(client_order_id, None)
        self._triggered.pop(client_order_id, None)
        cancelled = order.model_copy(update={"status": "canceled"})
        self._orders[client_order_id] = cancelled
        return cancelled

    async def poll(self) -> list[Order]:
        """Check every open limit and stop order against the market; returns those that filled."""
        filled = []
        for order in list(self._orders.values()):
            if order.status == "open":
                updated = await self._advance(order)
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
            "watch": dict(self._watch),
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
        # "stop_since": what snapshots of earlier versions called the stops' watch
        self._watch = {cid: int(t) for cid, t in state.get("watch", state.get("stop_since", {})).items()}
        self._triggered = {cid: int(t) for cid, t in state.get("triggered", {}).items()}
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))

    # -- arriving orders -------------------------------------------------------------------------------

    async def _fill_market(self, request: OrderRequest, quote: str) -> Order:
        book, now = await self._book(request.symbol)
        grid = await self._grid(request.symbol)
        target = _decimal(request.amount * self._fill_ratio())
        execution = execute(book, _side(request.side), qty=target, step=grid.step)
        if not execution.fills:
            raise InvalidOrder(f"no liquidity in the {request.symbol} order book for a market {request.side}")
        filled, cost = float(execution.qty), float(execution.quote)
        fee = cost * self.settings.fee_rate
        self._settle(request, filled, cost, fee)
        # a market order's unfilled rest is cancelled (IOC), as Binance reports it: EXPIRED
        status: OrderStatus = "closed" if filled >= request.amount - _EPSILON else "expired"
        order = self._order(request, status=status, filled=filled, cost=cost, fee=fee, quote=quote)
        return order.model_copy(update={"last_trade_timestamp": now})

    async def _place_limit(self, request: OrderRequest, base: str, quote: str) -> Order:
        assert request.price is not None  # nosec B101  # narrows a type; not an input check
        if request.side == "buy":
            self._reserve(request.client_order_id, quote, request.amount * request.price * (1 + self.settings.fee_rate))
        else:
            self._reserve(request.client_order_id, base, request.amount)
        order = self._order(request, status="open", filled=0.0, cost=0.0, fee=0.0, quote=quote)
        book, now = await self._book(request.symbol)
        grid = await self._grid(request.symbol)
        taken = execute(
            book, _side(request.side), qty=_decimal(request.amount), limit=_decimal(request.price), step=grid.step
        )
        self._watch[request.client_order_id] = now
        return self._apply(order, [(f, now) for f in taken.fills])

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
        self._watch[request.client_order_id] = int(ticker.timestamp or self._clock_ms())
        return self._order(request, status="open", filled=0.0, cost=0.0, fee=0.0, quote=quote)

    # -- resting orders --------------------------------------------------------------------------------

    async def _advance(self, order: Order) -> Order:
        """Replay the closed candles since the order was last looked at: a stop triggers where the path first
        reaches it and meets the book of that moment; a resting order fills with what traded at its price."""
        if order.type not in ("limit", "stop_loss_limit") or order.price is None:
            return order
        if not isinstance(self._market, CandleData):
            return await self._advance_on_ticker(order)
        coid = order.client_order_id or order.id
        ticker = await self._market.fetch_ticker(order.symbol)
        now = int(ticker.timestamp or self._clock_ms())
        since = self._watch.get(coid, now)
        tf = timeframe_ms(self.settings.candle_timeframe)
        # from the candle before `since`: the book at a moment is shaped by the candle closed before it
        candles = await self._market.fetch_ohlcv(order.symbol, self.settings.candle_timeframe, since - tf, now)
        closed = candles.slice(0, int((candles.time + tf <= now).sum()))
        if len(closed) == 0 or int(closed.time[-1]) + tf <= since:
            return order
        until = int(closed.time[-1]) + tf - 1  # the last millisecond of the newest closed candle
        grid = await self._grid(order.symbol)
        path = PricePath(closed, tf, grid.decimals)
        price = _decimal(order.price)
        fills: list[tuple[Fill, int]] = []
        remaining = _decimal(order.remaining)
        if order.type == "stop_loss_limit" and coid not in self._triggered:
            assert order.stop_price is not None  # nosec B101  # narrows a type
            at = path.first_crossing(since, until, order.stop_price, falling=True)
            if at is None:
                self._watch[coid] = until + 1
                return order
            self._triggered[coid] = at
            book = self.settings.book_model.book_at(
                order.symbol, path, at, tick=grid.tick or FINEST_STEP, step=grid.step, depth=self.settings.book_depth
            )
            taken = execute(book, "SELL", qty=remaining, limit=price, step=grid.step)
            fills += [(f, at) for f in taken.fills]
            remaining -= taken.qty
            since = at
        for crossing in path.crossings(since, until, order.price, falling=order.side == "buy"):
            if remaining <= 0:
                break
            qty = resting_fill(remaining, crossing.volume, grid.step)
            if qty > 0:
                fills.append((Fill(price, qty), crossing.time))
                remaining -= qty
        self._watch[coid] = until + 1
        return self._apply(order, fills)

    async def _advance_on_ticker(self, order: Order) -> Order:
        """Market data without candles: a stop triggers when the bid reaches it and fills there unless that is
        below its limit; a resting order fills whole when the ticker crosses its price."""
        assert order.price is not None  # nosec B101  # narrows a type
        coid = order.client_order_id or order.id
        ticker = await self._market.fetch_ticker(order.symbol)
        now = int(ticker.timestamp or self._clock_ms())
        reference = ticker.ask if order.side == "buy" else ticker.bid
        reference = reference if reference is not None else ticker.last
        if reference is None:
            return order
        price = order.price
        if order.type == "stop_loss_limit" and coid not in self._triggered:
            assert order.stop_price is not None  # nosec B101  # narrows a type
            if reference > order.stop_price:
                return order
            self._triggered[coid] = now
        crossed = reference <= price if order.side == "buy" else reference >= price
        if not crossed:
            return order
        # a resting order fills at its own price; one that was marketable on arrival at the better market
        fill_price = min(price, reference) if order.side == "buy" else max(price, reference)
        return self._apply(order, [(Fill(_decimal(fill_price), _decimal(order.remaining)), now)])

    def _apply(self, order: Order, fills: list[tuple[Fill, int]]) -> Order:
        """Book `fills` (each at its market time) into the account and the order; a complete order is closed."""
        if not fills:
            return order
        coid = order.client_order_id or order.id
        quote = _split(order.symbol)[1]
        amount = float(sum((f.qty for f, _ in fills), Decimal(0)))
        cost = float(sum((f.quote for f, _ in fills), Decimal(0)))
        fee = cost * self.settings.fee_rate
        per_unit = (order.price or 0.0) * (1 + self.settings.fee_rate) if order.side == "buy" else 1.0
        self._unreserve(coid, amount * per_unit)
        request = OrderRequest(
            symbol=order.symbol, side=order.side, type="limit", amount=amount, price=order.price, client_order_id=coid
        )
        self._settle(request, amount, cost, fee)
        filled = order.filled + amount
        done = filled >= order.amount - _EPSILON
        if done:
            self._unreserve(coid)
            self._watch.pop(coid, None)
            self._triggered.pop(coid, None)
        updated = order.model_copy(
            update={
                "status": "closed" if done else "open",
                "filled": filled,
                "remaining": max(order.amount - filled, 0.0),
                "average": (order.cost + cost) / filled,
                "cost": order.cost + cost,
                "fees": (Fee(currency=quote, cost=order.fee_in(quote) + fee),),
                "last_trade_timestamp": max(at for _, at in fills),
            }
        )
        self._orders[coid] = updated
        return updated

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

    def _unreserve(self, client_order_id: str, amount: float | None = None) -> None:
        """Give back `amount` of what the order reserved (all of it by default)."""
        reserved = self._reserved.get(client_order_id)
        if reserved is None:
            return
        currency, held = reserved
        released = held if amount is None else min(amount, held)
        if held - released > _EPSILON:
            self._reserved[client_order_id] = (currency, held - released)
        else:
            released = held
            del self._reserved[client_order_id]
        self._account.used[currency] = self._account.used.get(currency, 0.0) - released
        self._account.free[currency] = self._account.free.get(currency, 0.0) + released

    def _fill_ratio(self) -> float:
        probability = self.settings.partial_fill_probability
        if probability <= 0:
            return 1.0
        if self._rng.random() >= probability:
            return 1.0
        return self.settings.min_fill_ratio + (1 - self.settings.min_fill_ratio) * self._rng.random()

    async def _book(self, symbol: str) -> tuple[Book, int]:
        """The exchange's order book now, and its market time; a ticker's prices with unlimited depth (and
        `slippage_bps`) where the market has no book."""
        book: OrderBook = await self._market.fetch_order_book(symbol, self.settings.book_depth)
        if book.asks and book.bids:
            return Book.of_floats(book.bids, book.asks), int(book.timestamp or self._clock_ms())
        ticker = await self._market.fetch_ticker(symbol)
        ask = ticker.ask or ticker.last
        bid = ticker.bid or ticker.last
        if ask is None or bid is None:
            raise InvalidOrder(f"no price for {symbol} on the market data source")
        slip = self.settings.slippage_bps / 10_000
        deep = Decimal(10) ** 18
        one_level = Book(
            bids=(Level(_decimal(bid * (1 - slip)), deep),), asks=(Level(_decimal(ask * (1 + slip)), deep),)
        )
        return one_level, int(ticker.timestamp or self._clock_ms())

    async def _grid(self, symbol: str) -> _Grid:
        """The symbol's tick and lot step where the market data tells them (the paper broker's own exchange)."""
        grid = self._grids.get(symbol)
        if grid is None:
            market = (await self._market.load_markets()).get(symbol) if isinstance(self._market, MarketRules) else None
            tick = _decimal(market.tick_size) if market is not None and market.tick_size else None
            step = _decimal(market.step_size) if market is not None and market.step_size else FINEST_STEP
            decimals = max(-int(tick.as_tuple().exponent), 0) if tick is not None else None
            grid = self._grids[symbol] = _Grid(tick, step, decimals)
        return grid

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


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _side(side: OrderSide) -> Side:
    return "BUY" if side == "buy" else "SELL"


def _split(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    if not base or not quote:
        raise InvalidOrder(f"symbol {symbol!r} must look like BASE/QUOTE, e.g. BTC/USDT")
    return base, quote.split(":")[0]

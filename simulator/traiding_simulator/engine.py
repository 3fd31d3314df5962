"""Accounts, orders and matching against the replayed market's order book.

An arriving order meets the book of `traiding.domain.orderbook` at the replay's now and fills as
`orderbook.execute` says: level by level at each level's price (one fill per level), MARKET orders expiring
with what the book cannot give, LIMIT orders taking what they cross and then resting (GTC), expiring (IOC) or
filling whole or not at all (FOK). A resting order fills as a maker at its price, at the replay moment the
price path reached it, with what traded there (`orderbook.resting_fill`): a large one fills over several
candles, PARTIALLY_FILLED in between. A STOP_LOSS_LIMIT triggers at the moment the path reaches its stop and
then meets the book of that moment. Matching runs on every request and on a background tick, over the path
since the last match, so nothing is skipped and every fill carries the time it happened.
Commission follows Binance without BNB: a buy pays it in the base asset, a sell in the quote asset.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, cast

from traiding.domain.orderbook import Book, BookModel, Execution, Level, Side, TimeInForce, execute, resting_fill
from traiding.domain.orderbook import Fill as BookFill
from traiding_simulator import errors
from traiding_simulator.config import SimulatorConfig
from traiding_simulator.filters import SymbolRules, fmt
from traiding_simulator.market import Market, SymbolMarket

_EIGHT = Decimal("0.00000001")
ZERO = Decimal(0)
TIME_IN_FORCE = {"GTC", "IOC", "FOK"}
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"]
MAKER_ORDER_CREDIT, TAKER_ORDER_CREDIT = 5, 1  # unfilled-order count credit of a first fill (Binance's FAQ)


@dataclass
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Account:
    name: str
    balances: dict[str, Balance] = field(default_factory=lambda: defaultdict(Balance))
    update_time: int = 0


@dataclass
class Fill:
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: int


@dataclass
class Order:
    account: str
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cumm_quote_qty: Decimal = ZERO
    update_time: int = 0
    locked: Decimal = ZERO  # funds still reserved for the open part
    fills: list[Fill] = field(default_factory=list)
    stop_price: Decimal = ZERO  # STOP_LOSS_LIMIT: the trigger
    working_time: int | None = None  # when the order entered the book (a stop: when it triggered)
    matched_until: int | None = None  # the path before this is decided for the resting order

    @property
    def is_open(self) -> bool:
        return self.status in {"NEW", "PARTIALLY_FILLED"}

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def working_since(self) -> int:
        return self.working_time if self.working_time is not None else self.time

    @property
    def unmatched_since(self) -> int:
        return self.matched_until if self.matched_until is not None else self.working_since

    def to_json(self, with_times: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "cummulativeQuoteQty": fmt(self.cumm_quote_qty),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
        }
        if with_times:
            data.update(
                stopPrice=fmt(self.stop_price),
                icebergQty=fmt(ZERO),
                time=self.time,
                updateTime=self.update_time,
                isWorking=self.working_time is not None,
                workingTime=self.working_time if self.working_time is not None else -1,
                origQuoteOrderQty=fmt(self.orig_quote_qty),
                selfTradePreventionMode="EXPIRE_MAKER",
            )
        return data

    def place_response(self, resp_type: str) -> dict[str, Any]:
        ack: dict[str, Any] = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time,
        }
        if resp_type == "ACK":
            return ack
        data = {**ack, **self.to_json(with_times=False)}
        data.update(
            origQuoteOrderQty=fmt(self.orig_quote_qty),
            workingTime=self.working_time if self.working_time is not None else -1,
            selfTradePreventionMode="EXPIRE_MAKER",
        )
        if self.type == "STOP_LOSS_LIMIT":
            data["stopPrice"] = fmt(self.stop_price)
        if resp_type == "FULL":
            data["fills"] = [
                {
                    "price": fmt(f.price),
                    "qty": fmt(f.qty),
                    "commission": fmt(f.commission),
                    "commissionAsset": f.commission_asset,
                    "tradeId": f.trade_id,
                }
                for f in self.fills
            ]
        return data


@dataclass
class Trade:
    account: str
    symbol: str
    trade_id: int
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "quoteQty": fmt(self.quote_qty),
            "commission": fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }


def decimal_param(params: dict[str, str], name: str, required: bool = True) -> Decimal | None:
    text = params.get(name)
    if text is None or text == "":
        if required:
            raise errors.missing_param(name)
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise errors.bad_param(name) from None
    if not value.is_finite() or value < 0:
        raise errors.bad_param(name)
    return value


FirstFill = Callable[[str, int], None]  # (account, orders to take off its unfilled order count)


class Exchange:
    """Balances, orders and trades of every account; all amounts are Decimals."""

    def __init__(self, config: SimulatorConfig, market: Market, on_first_fill: FirstFill | None = None) -> None:
        self.config = config
        self.market = market
        self.book_model = BookModel(
            spread_bps=config.spread_bps,
            volatility_spread=config.book_volatility_spread,
            depth_fraction=config.book_depth_fraction,
            min_level_notional=config.book_min_level_notional,
            seed=config.seed,
        )
        self.on_first_fill = on_first_fill
        self.reset()

    def reset(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self.open_orders: dict[int, Order] = {}  # in the book (limits, triggered stops)
        self.stop_orders: dict[int, Order] = {}  # stops waiting for their trigger
        self.trades: dict[str, list[Trade]] = defaultdict(list)
        self.client_ids: dict[tuple[str, str, str], int] = {}  # (account, symbol, clientOrderId) -> orderId
        self.orders_by_client_id: dict[str, int] = defaultdict(int)  # accepted orders per client order id
        self.order_attempts_by_client_id: dict[str, int] = defaultdict(int)
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._last_match_ms: int | None = None

    # --- accounts
    def account(self, name: str) -> Account:
        account = self.accounts.get(name)
        if account is None:
            account = Account(name)
            for asset, amount in self.config.initial_balances.items():
                account.balances[asset].free = Decimal(amount)
            self.accounts[name] = account
        return account

    def set_balances(self, name: str, balances: dict[str, Decimal]) -> None:
        account = self.account(name)
        for asset, amount in balances.items():
            account.balances[asset.upper()].free = Decimal(amount)

    # --- prices
    def order_book(self, symbol: SymbolMarket, now: int, depth: int | None = None) -> Book:
        """The book at `now`, `depth` levels a side (default: as deep as orders may walk)."""
        return symbol.book(self.book_model, now, depth or self.config.book_levels)

    def touch(self, symbol: SymbolMarket, now: int) -> tuple[Level, Level]:
        """The best bid and the best ask at `now` (the book's first level a side)."""
        book = self.order_book(symbol, now, 1)
        return book.bids[0], book.asks[0]

    # --- orders
    def place(self, account_name: str, params: dict[str, str], now: int, test: bool = False) -> Order:
        symbol = self.market.get(params.get("symbol", "").upper())
        if not params.get("symbol"):
            raise errors.missing_param("symbol")
        if symbol is None:
            raise errors.invalid_symbol()
        side = params.get("side", "").upper()
        if not side:
            raise errors.missing_param("side")
        if side not in {"BUY", "SELL"}:
            raise errors.invalid_side()
        order_type = params.get("type", "").upper()
        if not order_type:
            raise errors.missing_param("type")
        if order_type not in ORDER_TYPES:
            raise (
                errors.invalid_order_type()
                if order_type not in {"STOP_LOSS", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"}
                else errors.order_rejected("This order type is not supported by the simulator.")
            )
        client_id = params.get("newClientOrderId") or f"sim-{next(self._order_ids)}"
        self.order_attempts_by_client_id[client_id] += 1
        self._check_duplicate(account_name, symbol.id, client_id)
        rules = symbol.rules
        account = self.account(account_name)
        base, quote = account.balances[symbol.base_asset], account.balances[symbol.quote_asset]
        taker = cast(Side, side)

        price = ZERO
        quote_qty = ZERO
        stop_price = ZERO
        tif = ""
        execution = Execution((), "NEW")
        if order_type == "MARKET":
            qty_param = decimal_param(params, "quantity", required=False)
            quote_param = decimal_param(params, "quoteOrderQty", required=False)
            if (qty_param is None) == (quote_param is None):
                raise errors.BinanceError(
                    400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty."
                )
            # MARKET orders have no price: NOTIONAL checks them at the average price of the last 5 minutes
            average = Decimal(repr(symbol.average_price(now, AVG_PRICE_MINUTES)))
            book = self.order_book(symbol, now)
            if qty_param is not None:
                qty = qty_param
                rules.check_lot(qty, market=True)
                rules.check_notional(qty * average, market=True)
                execution = execute(book, taker, qty=qty, step=rules.step_size)
            else:
                assert quote_param is not None  # nosec B101  # narrows a type; not an input check
                quote_qty = quote_param
                rules.check_notional(quote_qty, market=True)
                execution = execute(book, taker, quote=quote_qty, step=rules.step_size)
                qty = execution.qty
                rules.check_lot(qty, market=True)
            need = _quote_of(execution.fills) if side == "BUY" else qty
        else:
            price_param = decimal_param(params, "price")
            qty_param = decimal_param(params, "quantity")
            assert price_param is not None and qty_param is not None  # nosec B101  # narrows a type; not an input check
            price, qty = price_param, qty_param
            tif = (params.get("timeInForce") or ("GTC" if order_type == "LIMIT_MAKER" else "")).upper()
            if order_type == "LIMIT" and not tif:
                raise errors.missing_param("timeInForce")
            if order_type == "LIMIT" and tif not in TIME_IN_FORCE:
                raise errors.BinanceError(400, -1115, "Invalid timeInForce.")
            if order_type == "STOP_LOSS_LIMIT" and not tif:
                raise errors.missing_param("timeInForce")
            rules.check_price(price)
            rules.check_lot(qty, market=False)
            rules.check_notional(qty * price, market=False)
            if order_type == "STOP_LOSS_LIMIT":
                stop_param = decimal_param(params, "stopPrice")
                assert stop_param is not None  # nosec B101  # narrows a type; not an input check
                stop_price = stop_param
                rules.check_price(stop_price)
                last = Decimal(str(symbol.price_at(now)))
                # a sell stop triggers when the price falls to it, a buy stop when it rises to it
                if (side == "SELL" and last <= stop_price) or (side == "BUY" and last >= stop_price):
                    raise errors.order_rejected("Order would trigger immediately.")
            else:
                execution = execute(
                    self.order_book(symbol, now),
                    taker,
                    qty=qty,
                    limit=price,
                    time_in_force=cast(TimeInForce, tif),
                    step=rules.step_size,
                )
                if order_type == "LIMIT_MAKER" and execution.fills:
                    raise errors.order_rejected("Order would immediately match and take.")
            # Funds: a buy reserves quote for the whole order at its limit price, a sell the base it sells.
            need = qty * price if side == "BUY" else qty

        wallet = quote if side == "BUY" else base
        if wallet.free < need:
            raise errors.insufficient_balance()
        if test:
            return Order(account_name, symbol.id, 0, client_id, side, order_type, tif, price, qty, quote_qty, now)

        order = Order(
            account=account_name,
            symbol=symbol.id,
            order_id=next(self._order_ids),
            client_order_id=client_id,
            side=side,
            type=order_type,
            time_in_force=tif if order_type != "MARKET" else "GTC",
            price=price,
            orig_qty=qty,
            orig_quote_qty=quote_qty,
            time=now,
            update_time=now,
            stop_price=stop_price,
            working_time=None if order_type == "STOP_LOSS_LIMIT" else now,
        )
        wallet.free -= need
        wallet.locked += need
        order.locked = need
        self.orders[order.order_id] = order
        self.client_ids[(account_name, symbol.id, client_id)] = order.order_id
        self.orders_by_client_id[client_id] += 1
        account.update_time = now

        if order_type == "STOP_LOSS_LIMIT":
            self.stop_orders[order.order_id] = order
        else:
            self._take(order, symbol, execution, now)
        return order

    def _take(self, order: Order, symbol: SymbolMarket, execution: Execution, now: int) -> None:
        """Book an arriving (or just triggered) order's taker fills, then rest it or end it as `execution` says."""
        for fill in execution.fills:
            self._fill(order, symbol, fill, now, maker=False)
        if execution.status in {"NEW", "PARTIALLY_FILLED"}:
            order.status = execution.status
            self.open_orders[order.order_id] = order
        elif execution.status == "EXPIRED":
            self._release(order)
            order.status = "EXPIRED"
            order.update_time = now

    def _check_duplicate(self, account: str, symbol_id: str, client_id: str) -> None:
        existing = self.client_ids.get((account, symbol_id, client_id))
        if existing is None:
            return
        if self.config.duplicate_client_order_id == "any" or self.orders[existing].is_open:
            raise errors.duplicate_order()

    def _release(self, order: Order) -> None:
        symbol = self.market.by_id[order.symbol]
        account = self.account(order.account)
        asset = symbol.quote_asset if order.side == "BUY" else symbol.base_asset
        account.balances[asset].locked -= order.locked
        account.balances[asset].free += order.locked
        order.locked = ZERO

    def _fill(self, order: Order, symbol: SymbolMarket, fill: BookFill, at: int, *, maker: bool) -> None:
        """One fill at replay time `at`: balances, commission, the trade, the order's status."""
        price, qty = fill.price, fill.qty
        account = self.account(order.account)
        quote_amount = (qty * price).quantize(_EIGHT, rounding=ROUND_DOWN)
        fee_rate = self.config.maker_fee if maker else self.config.taker_fee
        base, quote = account.balances[symbol.base_asset], account.balances[symbol.quote_asset]
        if order.side == "BUY":
            commission = (qty * fee_rate).quantize(_EIGHT, rounding=ROUND_DOWN)
            commission_asset = symbol.base_asset
            # what this part reserved: its cost for a MARKET order, its quantity at the limit price otherwise
            reserved = min(quote_amount if order.type == "MARKET" else qty * order.price, order.locked)
            quote.locked -= reserved
            quote.free += reserved - quote_amount
            base.free += qty - commission
        else:
            commission = (quote_amount * fee_rate).quantize(_EIGHT, rounding=ROUND_DOWN)
            commission_asset = symbol.quote_asset
            reserved = min(qty, order.locked)
            base.locked -= reserved
            base.free += reserved - qty
            quote.free += quote_amount - commission
        order.locked -= reserved
        first = order.executed_qty == 0
        trade_id = next(self._trade_ids)
        order.fills.append(Fill(price, qty, commission, commission_asset, trade_id))
        order.executed_qty += qty
        order.cumm_quote_qty += quote_amount
        order.update_time = max(order.update_time, at)
        account.update_time = max(account.update_time, at)
        self.trades[order.account].append(
            Trade(
                order.account,
                order.symbol,
                trade_id,
                order.order_id,
                price,
                qty,
                quote_amount,
                commission,
                commission_asset,
                at,
                order.side == "BUY",
                maker,
            )
        )
        if order.remaining <= 0:
            order.status = "FILLED"
            self._release(order)  # a buy that filled below its limit keeps nothing reserved
            self.open_orders.pop(order.order_id, None)
        else:
            order.status = "PARTIALLY_FILLED"
        if first and self.on_first_fill is not None:
            self.on_first_fill(order.account, MAKER_ORDER_CREDIT if maker else TAKER_ORDER_CREDIT)

    def match(self, now: int) -> None:
        """Trigger stops and fill resting orders with what the replay path traded at their prices since the last
        match, each fill at the moment the path got there."""
        last = self._last_match_ms
        since = last if last is not None and last <= now else None  # None: look from each order's start
        self._last_match_ms = now
        for order in sorted(self.stop_orders.values(), key=lambda o: o.order_id):
            self._trigger_stop(order, order.time if since is None else max(order.time, since), now)
        for order in sorted(self.open_orders.values(), key=lambda o: o.order_id):
            self._match_resting(order, now)

    def _match_resting(self, order: Order, now: int) -> None:
        """A resting order gets, in each candle whose path reaches its price, the volume that traded there, stamped
        when the path first got there. A candle still forming is decided once it has traded enough to fill the
        order, else when it closes: so the fills do not depend on how often anyone looks."""
        symbol = self.market.by_id[order.symbol]
        start = order.unmatched_since
        # a resting buy fills when the price falls to it, a sell when it rises to it
        for crossing in symbol.path.crossings(start, now, float(order.price), falling=order.side == "BUY"):
            if crossing.candle_end > now + 1 and crossing.volume < order.remaining:
                order.matched_until = max(start, crossing.candle_end - symbol.path.interval_ms)
                return  # this candle is still trading at the order's price: decided later
            qty = resting_fill(order.remaining, crossing.volume, symbol.rules.step_size)
            if qty > 0:
                self._fill(order, symbol, BookFill(order.price, qty), crossing.time, maker=True)
            if not order.is_open:
                return
        order.matched_until = max(start, now + 1)

    def _trigger_stop(self, order: Order, start: int, now: int) -> None:
        symbol = self.market.by_id[order.symbol]
        at = symbol.first_crossing(start, now, float(order.stop_price), falling=order.side == "SELL")
        if at is None:
            return
        del self.stop_orders[order.order_id]
        order.working_time = at
        order.update_time = at
        execution = execute(
            self.order_book(symbol, at),
            cast(Side, order.side),
            qty=order.remaining,
            limit=order.price,
            time_in_force=cast(TimeInForce, order.time_in_force),
            step=symbol.rules.step_size,
        )
        self._take(order, symbol, execution, at)  # what does not fill rests at its limit from the trigger on

    def find(self, account: str, params: dict[str, str]) -> Order:
        symbol = self._symbol_param(params)
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if not order_id and not client_id:
            raise errors.BinanceError(
                400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        order: Order | None = None
        if order_id:
            try:
                order = self.orders.get(int(order_id))
            except ValueError:
                raise errors.bad_param("orderId") from None
        else:
            assert client_id is not None  # nosec B101  # narrows a type; not an input check
            found = self.client_ids.get((account, symbol.id, client_id))
            order = self.orders.get(found) if found is not None else None
        if order is None or order.account != account or order.symbol != symbol.id:
            raise errors.order_does_not_exist()
        if order_id and client_id and order.client_order_id != client_id:
            raise errors.order_does_not_exist()
        return order

    def cancel(self, account: str, params: dict[str, str], now: int) -> Order:
        try:
            order = self.find(account, params)
        except errors.BinanceError as exc:
            if exc.code == -2013:
                raise errors.unknown_order_sent() from None
            raise
        if not order.is_open:
            raise errors.unknown_order_sent()
        self._release(order)
        order.status = "CANCELED"
        order.update_time = now
        self.open_orders.pop(order.order_id, None)
        self.stop_orders.pop(order.order_id, None)
        return order

    def _symbol_param(self, params: dict[str, str]) -> SymbolMarket:
        symbol_id = params.get("symbol")
        if not symbol_id:
            raise errors.missing_param("symbol")
        symbol = self.market.get(symbol_id.upper())
        if symbol is None:
            raise errors.invalid_symbol()
        return symbol

    def symbol_rules(self, symbol_id: str) -> SymbolRules:
        return self.market.by_id[symbol_id].rules


AVG_PRICE_MINUTES = 5  # avgPriceMins of the NOTIONAL filter and of /api/v3/avgPrice


def _quote_of(fills: tuple[BookFill, ...]) -> Decimal:
    """What fills cost in the quote asset, each rounded down to 8 decimals as the balance change is."""
    return sum(((f.qty * f.price).quantize(_EIGHT, rounding=ROUND_DOWN) for f in fills), ZERO)

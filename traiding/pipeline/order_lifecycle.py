"""The money path of a trading session: intents, sends, reconciliation, fills, positions and fees.

Every order starts as an *intent*: symbol, side, type, amount, the candle it acts on, why, and a client order
id derived from exactly that (`client_ids.client_order_id`). The intent is written into the run's checkpoint
and the checkpoint is persisted (`flush`, the driver's status write) *before* the order is sent, so whatever
happens after (a lost answer, a crash, a second driver) the run knows the order may exist and under which id:
- every step first reconciles the written intents with the exchange: an order found under the id must be
  the intended one (symbol, side, amount), else the run stops with the reason; it is booked exactly once; an
  id the exchange does not know once its window for late requests has passed was never placed;
- an intent that cannot be written (a conflict, a lost lease) is never sent.

The books are the run's own (the account may hold other funds): its cash in the quote currency, positions
with their cost basis, closed trades, and every fee converted into the quote currency whatever the asset it
was paid in (Binance: the base of a buy, or BNB). A position with a stop loss leaves a protective
stop-limit sell resting on the exchange (where the exchange has one; the paper account simulates it), moved
with the position and cancelled before any other exit. A remainder below the market's minimum order is
reported as dust and left, never retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from traiding.domain import risk
from traiding.pipeline.context import Flush, RunContext
from traiding.pipeline.crash_points import crash_point
from traiding.pipeline.price_series import append_capped
from traiding_adapters.client_ids import client_order_id
from traiding_adapters.errors import (
    CircuitOpen,
    ClockSkewError,
    ExchangeLayerError,
    OrderNotFound,
    OrderOutcomeUnknown,
    UnknownSymbol,
)
from traiding_adapters.exchange import Market, Order, OrderRequest, OrderSide, OrderType

# A stop-limit sell triggers at the stop and may fill down to this fraction of it (freqtrade's default), so a
# fast fall still fills; a gap below the limit leaves it resting at the limit.
STOP_LIMIT_RATIO = 0.99
# An intent not sent within this long after it was written is not sent at all (the write itself was slow);
# a send that has not answered within SEND_TIMEOUT_S is given up. Together with the exchange's window for
# late requests they bound when an order for an intent can still appear.
SEND_START_LIMIT_MS = 10_000
SEND_TIMEOUT_S = 30.0
# A market order the exchange still reports executing this long after it was written is cancelled, and what it
# filled is booked: its symbol trades nothing new meanwhile, and a run must not wait on it forever.
MARKET_EXECUTION_LIMIT_MS = 60_000
KEPT_ORDERS = 1000  # booked orders kept in the checkpoint (dedup of late answers, audits); the event log has all
KEPT_TRADES = 500
AMOUNT_TOLERANCE = 1e-9


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class OrderMismatch(ExchangeLayerError):
    """An order under one of our client order ids is not the order we intended: stop trading, say why."""


@dataclass
class Intent:
    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    candle_time: int
    reason: str
    written_ms: int  # wall clock, when the intent was written (the late-request window counts from here)
    price: float | None = None
    stop_price: float | None = None

    def request(self) -> OrderRequest:
        return OrderRequest(
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            amount=self.amount,
            price=self.price,
            stop_price=self.stop_price,
            client_order_id=self.client_order_id,
        )


@dataclass
class Position:
    amount: float = 0.0  # base currency held by this run (after fees charged in the base currency)
    entry_price: float = 0.0  # volume-weighted fill price
    entry_time: int = 0
    stop: float | None = None
    cost: float = 0.0  # quote currency spent on `amount`, fees included: the basis of the trade's PnL
    stop_order: str | None = None  # client order id of the protective stop resting on the exchange
    stop_amount: float = 0.0  # what that stop sells


class OrderLifecycle:
    """The session's orders and books, kept in `checkpoint` (plain JSON, see module doc)."""

    def __init__(
        self,
        ctx: RunContext,
        checkpoint: dict[str, Any],
        markets: dict[str, Market],
        flush: Flush,
        *,
        wall_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.ctx = ctx
        self.cp = checkpoint
        self.markets = markets
        self.flush = flush
        self.wall_ms = wall_ms
        self.limits = risk.RiskLimits(
            ctx.spec.risk.maxPositionFraction,
            ctx.spec.risk.stopLossPct,
            ctx.spec.risk.dailyLossLimitPct,
            ctx.spec.risk.maxDrawdownPct,
        )
        for key, empty in (
            ("positions", {}),
            ("intents", {}),
            ("orders", {}),
            ("dust", {}),
            ("trades", []),
            ("pending_exits", {}),
        ):
            self.cp.setdefault(key, empty)
        self.cp.setdefault("intent_counts", {})
        # Per symbol, what could not be resolved in this step (an order that cannot be read or booked yet): its
        # symbol trades nothing, the others go on, and the step ends with the error (`raise_unresolved`).
        self.unresolved: dict[str, ExchangeLayerError] = {}

    # --- state ----------------------------------------------------------------------------------------------
    def position(self, symbol: str) -> Position:
        raw = self.cp["positions"].get(symbol)
        return Position(**raw) if raw else Position()

    def _set_position(self, symbol: str, position: Position) -> None:
        self.cp["positions"][symbol] = asdict(position)

    def open_symbols(self) -> list[str]:
        return [symbol for symbol, p in self.cp["positions"].items() if p["amount"] > 0]

    def holds_anything(self) -> bool:
        """Positions, resting stops or orders whose outcome is not known yet."""
        stops = any(p.get("stop_order") for p in self.cp["positions"].values())
        return bool(self.open_symbols() or self.cp["intents"] or stops)

    def busy(self, symbol: str) -> bool:
        """An order of `symbol` whose outcome is not in the books yet: nothing new is sent for it meanwhile."""
        return symbol in self.unresolved or any(i["symbol"] == symbol for i in self.cp["intents"].values())

    def raise_unresolved(self) -> None:
        """End the step with the first error this step could not resolve (after every other symbol's work)."""
        if self.unresolved:
            raise next(iter(self.unresolved.values()))

    def _defer(self, symbol: str, error: ExchangeLayerError) -> None:
        if isinstance(error, OrderMismatch):
            raise error  # not a retry: trading stops
        self.unresolved.setdefault(symbol, error)

    def equity(self, prices: dict[str, float]) -> float:
        """Cash plus positions and dust at `prices` (the last closed candles)."""
        held = sum(float(p["amount"]) * float(prices.get(s, p["entry_price"])) for s, p in self.cp["positions"].items())
        dust = sum(float(amount) * float(prices.get(s, 0.0)) for s, amount in self.cp["dust"].items())
        return float(self.cp["cash"]) + held + dust

    # --- intents --------------------------------------------------------------------------------------------
    def _intent(
        self,
        symbol: str,
        side: OrderSide,
        order_type: OrderType,
        amount: float,
        *,
        candle_time: int,
        reason: str,
        price: float | None = None,
        stop_price: float | None = None,
    ) -> Intent:
        base_key = f"{symbol}|{side}|{order_type}|{candle_time}|{reason}"
        counts: dict[str, list[int]] = self.cp["intent_counts"]
        attempt = counts.get(base_key, [candle_time, 0])[1]
        counts[base_key] = [candle_time, attempt + 1]
        if len(counts) > 4 * KEPT_TRADES:  # keys of old candles never come back
            for key in sorted(counts, key=lambda k: counts[k][0])[: len(counts) // 2]:
                del counts[key]
        return Intent(
            client_order_id=client_order_id(self.ctx.run_uid, f"{base_key}|{attempt}"),
            symbol=symbol,
            side=side,
            type=order_type,
            amount=amount,
            candle_time=candle_time,
            reason=reason,
            written_ms=self.wall_ms(),
            price=price,
            stop_price=stop_price,
        )

    async def _place(self, intent: Intent) -> Order | None:
        """Write the intent, persist it, then send it once; None when the exchange refused it."""
        coid = intent.client_order_id
        self.cp["intents"][coid] = asdict(intent)
        await self.flush()  # write-ahead: a failed write raises and nothing is sent
        if self.wall_ms() - intent.written_ms > SEND_START_LIMIT_MS:
            # Persisting took too long to still send inside the window a later reconciliation assumes.
            raise OrderOutcomeUnknown(f"order {coid} was written too late to be sent; it is resolved later", coid)
        try:
            existing = await self.ctx.orders.fetch_order(intent.symbol, client_order_id=coid)
        except OrderNotFound:
            existing = None
        if existing is not None:  # another driver, or a replayed step, sent it already
            return await self._resolve_found(intent, existing)
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                order = await self.ctx.orders.create_order(intent.request())
        except TimeoutError:
            raise OrderOutcomeUnknown(f"order {coid}: no answer within {SEND_TIMEOUT_S:g} s", coid) from None
        except ExchangeLayerError as error:
            if isinstance(error, CircuitOpen | ClockSkewError):
                del self.cp["intents"][coid]  # refused before it reached the exchange: certainly not placed
                raise
            if error.transient or isinstance(error, OrderOutcomeUnknown):
                raise  # the outcome is unknown: the intent stays and the next step reconciles it
            del self.cp["intents"][coid]
            self.ctx.events.emit(
                "Trading", "OrderRejected", f"{intent.side} {intent.symbol} ({intent.reason}): {error}", level="warning"
            )
            return None
        crash_point("after-send")
        await self._resolve(intent, order)
        return order

    async def reconcile(self) -> str | None:
        """Resolve every written intent against the exchange, before anything else; why the session must wait
        (an order may still appear), or None once no intent is of unknown placement. An intent that cannot
        be resolved yet (its order cannot be read or booked) holds only its own symbol (`busy`)."""
        waiting: list[str] = []
        for coid, raw in list(self.cp["intents"].items()):
            intent = Intent(**raw)
            try:
                if not await self._reconcile_one(intent):
                    waiting.append(coid)
            except ExchangeLayerError as error:
                self._defer(intent.symbol, error)
        if waiting:
            return (
                f"waiting for the exchange's window for late requests before deciding whether "
                f"{', '.join(waiting)} was placed"
            )
        return None

    async def _reconcile_one(self, intent: Intent) -> bool:
        """False while the intent's order may still appear on the exchange."""
        coid = intent.client_order_id
        try:
            order = await self.ctx.orders.fetch_order(intent.symbol, client_order_id=coid)
        except OrderNotFound:
            window = self.ctx.orders.late_order_window_ms
            late = SEND_START_LIMIT_MS + int(SEND_TIMEOUT_S * 1000) + window if window else 0
            if self.wall_ms() < intent.written_ms + late:
                return False
            del self.cp["intents"][coid]
            self.ctx.events.emit(
                "Trading",
                "OrderNotPlaced",
                f"{intent.side} {intent.symbol} ({intent.reason}) {coid} never reached the exchange: not placed "
                "(an exit is sent again, an entry is dropped)",
                level="warning",
            )
            return True
        await self._resolve_found(intent, order)
        if coid in self.cp["intents"] and self.wall_ms() - intent.written_ms > MARKET_EXECUTION_LIMIT_MS:
            await self._cancel_executing(intent)
        return True

    async def _cancel_executing(self, intent: Intent) -> None:
        coid = intent.client_order_id
        try:
            order = await self.ctx.orders.cancel_order(intent.symbol, client_order_id=coid)
        except OrderNotFound:  # it ended meanwhile
            order = await self.ctx.orders.fetch_order(intent.symbol, client_order_id=coid)
        self.ctx.events.emit(
            "Trading",
            "OrderCancelled",
            f"{intent.side} {intent.symbol} {coid} was still executing after {MARKET_EXECUTION_LIMIT_MS // 1000} s: "
            "cancelled; what it filled is booked",
            level="warning",
        )
        await self._resolve(intent, order)

    async def _resolve_found(self, intent: Intent, order: Order) -> Order:
        problem = self._mismatch(intent, order)
        if problem:
            del self.cp["intents"][intent.client_order_id]
            self.cp.setdefault("mismatched", []).append({**asdict(intent), "found": problem})
            raise OrderMismatch(
                f"order {intent.client_order_id} on the exchange is not the order this run intended ({problem}); "
                "trading stops: check the account's orders"
            )
        await self._resolve(intent, order)
        if intent.client_order_id not in self.cp["intents"]:
            self.ctx.events.emit(
                "Trading",
                "OrderRecovered",
                f"order {intent.client_order_id} ({intent.side} {intent.symbol}) was placed",
            )
        return order

    @staticmethod
    def _mismatch(intent: Intent, order: Order) -> str | None:
        if order.symbol != intent.symbol or order.side != intent.side:
            return f"{order.side} {order.symbol}, intended {intent.side} {intent.symbol}"
        if abs(order.amount - intent.amount) > max(AMOUNT_TOLERANCE, intent.amount * 1e-9):
            return f"amount {order.amount:g}, intended {intent.amount:g}"
        return None

    async def _resolve(self, intent: Intent, order: Order) -> None:
        """An intent's order is known: a market order still open stays pending; anything else is resolved.

        The intent goes only once its fill is in the books: booking can fail (valuing a fee paid in BNB needs
        a price), and an intent gone before its fill is booked would leave a filled order nobody reconciles.
        """
        coid = intent.client_order_id
        if order.status == "open" and intent.type == "market":
            return  # still executing: the next reconciliation books it
        if intent.type == "stop_loss_limit" and order.status == "open":
            position = self.position(intent.symbol)
            position.stop_order, position.stop_amount = coid, intent.amount
            self._set_position(intent.symbol, position)
            self.cp["intents"].pop(coid, None)
            self.ctx.events.emit(
                "Trading",
                "StopPlaced",
                f"protective stop for {intent.amount:g} {intent.symbol} at {intent.stop_price:.8g} "
                f"(limit {intent.price:.8g}) rests on the exchange ({coid})",
            )
            return
        if order.filled > 0:
            if intent.type == "stop_loss_limit":
                await self._book(order, "stop_loss", self._fill_time(order, intent.candle_time))
            else:
                await self._book(order, intent.reason, intent.candle_time)
        else:
            self.ctx.events.emit(
                "Trading", "OrderNotFilled", f"{intent.side} {intent.symbol} {coid} ended {order.status} unfilled"
            )
        self.cp["intents"].pop(coid, None)

    def _fill_time(self, order: Order, fallback: int) -> int:
        filled_at = order.last_trade_timestamp or fallback
        return filled_at // self.ctx.timeframe_ms * self.ctx.timeframe_ms

    # --- entries and exits ----------------------------------------------------------------------------------
    async def buy(self, symbol: str, amount: float, candle_time: int) -> Order | None:
        if self.busy(symbol) or symbol in self.cp["pending_exits"]:
            return None  # an earlier order's outcome is not in the books yet: no second one against that cash
        if self.position(symbol).amount <= 0 and self.position(symbol).stop_order:
            await self.cancel_stop(symbol)  # the stop of a position that is gone: not the new position's stop
            if self.position(symbol).stop_order:
                return None  # its cancel has not taken effect: no new position under an old stop
        intent = self._intent(symbol, "buy", "market", amount, candle_time=candle_time, reason="entry")
        order = await self._place(intent)
        await self.ensure_stop(symbol)
        return order

    async def sell(self, symbol: str, reason: str, candle_time: int) -> None:
        """Exit the whole position: cancel its stop first (which may have filled meanwhile), then sell.

        The exit is a pending exit (in the checkpoint) until its order is sent or nothing is left to sell: one
        that cannot go now (an order of the symbol unresolved, its stop still being cancelled and holding the
        coins, an error on the way) is retried every step (`retry_pending_exits`). The candle that signalled
        it is gone by then; the decision is not."""
        pending = self.cp["pending_exits"].setdefault(symbol, {"reason": reason, "candle_time": candle_time})
        if self.busy(symbol):
            self._announce_pending(symbol, pending)
            return
        await self.cancel_stop(symbol)
        position = self.position(symbol)
        if position.stop_order:
            self._announce_pending(symbol, pending)
            return
        if position.amount <= 0:
            del self.cp["pending_exits"][symbol]
            return
        market = self.markets[symbol]
        balances = await self.ctx.orders.fetch_balances()
        free = balances[market.base].free if market.base in balances else 0.0
        # Never sell more than the account holds: the run's books and the account agree, but another client on
        # the same account or a fee booked elsewhere must not turn every exit into an "insufficient balance".
        amount = market.round_amount(min(position.amount, free))
        price = float(self.cp.get("last_prices", {}).get(symbol, position.entry_price))
        problems = market.violations(amount, price) if amount > 0 else ["nothing left to sell"]
        if problems:
            self._write_off_dust(symbol, position, "; ".join(problems))
            del self.cp["pending_exits"][symbol]
            return
        order = await self._place(
            self._intent(symbol, "sell", "market", amount, candle_time=candle_time, reason=reason)
        )
        # Pending until flat: a sell still executing (the symbol is busy meanwhile) or one that filled only in
        # part (a cancelled remainder) is retried; one the exchange refused is reported and not retried.
        if order is None or self.position(symbol).amount <= 0:
            del self.cp["pending_exits"][symbol]

    def _announce_pending(self, symbol: str, pending: dict[str, Any]) -> None:
        if not pending.get("announced"):
            pending["announced"] = True
            self.ctx.events.emit(
                "Trading",
                "ExitPending",
                f"{symbol}: the exit ({pending['reason']}) waits for an earlier order or a stop's cancel; "
                "retried every step",
                level="warning",
            )

    async def retry_pending_exits(self) -> None:
        """Send the exits that could not go before (see `sell`); one gone flat meanwhile (its stop filled) ends."""
        for symbol, pending in list(self.cp["pending_exits"].items()):
            try:
                await self.sell(symbol, str(pending["reason"]), int(pending["candle_time"]))
            except ExchangeLayerError as error:
                self._defer(symbol, error)

    def _write_off_dust(self, symbol: str, position: Position, why: str) -> None:
        """A remainder no order can sell (below the minimum notional): reported and left, never retried."""
        self.cp["dust"][symbol] = float(self.cp["dust"].get(symbol, 0.0)) + position.amount
        proceeds_basis = position.cost
        # A stop that still rests on the exchange stays known, so the run takes it off before it ends.
        self._set_position(symbol, Position(stop_order=position.stop_order, stop_amount=position.stop_amount))
        self.ctx.events.emit(
            "Trading",
            "DustLeft",
            f"{position.amount:g} {symbol} cannot be sold ({why}); left in the account as dust "
            f"(its basis {proceeds_basis:.2f} is no longer a position)",
            level="warning",
            metrics={"symbol": symbol, "amount": position.amount},
        )

    async def close_all(self, reason: str) -> None:
        """Exit every position; one that cannot exit now does not keep the others open."""
        last_closed: dict[str, int] = self.cp.get("last_closed", {})
        for symbol in dict.fromkeys([*self.cp["positions"], *self.cp["pending_exits"]]):
            if (
                self.position(symbol).amount > 0
                or self.position(symbol).stop_order
                or symbol in self.cp["pending_exits"]
            ):
                try:
                    await self.sell(symbol, reason, int(last_closed.get(symbol, 0)))
                except ExchangeLayerError as error:
                    self._defer(symbol, error)

    # --- protective stops -----------------------------------------------------------------------------------
    async def ensure_stop(self, symbol: str) -> None:
        """A position with a stop loss has its stop resting on the exchange for its whole amount."""
        position = self.position(symbol)
        stop_level = position.stop
        if position.amount <= 0 or stop_level is None or not self.ctx.spec.risk.stopOnExchange:
            return
        if self.busy(symbol) or symbol in self.cp["pending_exits"]:
            return  # an unresolved order (maybe a stop already sent) first; or the position is being left
        market = self.markets[symbol]
        amount = market.round_amount(position.amount)
        if position.stop_order and abs(position.stop_amount - amount) <= AMOUNT_TOLERANCE:
            return
        last = float(self.cp.get("last_prices", {}).get(symbol, position.entry_price))
        if last <= stop_level:
            return  # the market is past the stop: the session's candle check exits instead
        if not await self.ctx.orders.supports_protective_stops(symbol):
            return  # the session checks the stop on every closed candle instead
        if position.stop_order:  # the position changed: move the stop
            await self.cancel_stop(symbol)
            position = self.position(symbol)
            if position.amount <= 0 or position.stop_order:
                return  # gone, or the old stop's cancel has not taken effect yet: never two stops
        stop = market.round_price(stop_level)
        limit = market.round_price(stop_level * STOP_LIMIT_RATIO)
        problems = market.violations(amount, limit)
        if problems:
            self.ctx.events.emit(
                "Trading",
                "StopNotPlaced",
                f"{symbol}: no stop on the exchange ({'; '.join(problems)}); the session checks it on every candle",
                level="warning",
            )
            return
        intent = self._intent(
            symbol,
            "sell",
            "stop_loss_limit",
            amount,
            candle_time=position.entry_time,
            reason="protective_stop",
            price=limit,
            stop_price=stop,
        )
        await self._place(intent)

    async def cancel_stop(self, symbol: str) -> None:
        """Take the position's stop off the exchange; a stop that filled meanwhile is booked instead."""
        position = self.position(symbol)
        coid = position.stop_order
        if not coid:
            return
        try:
            order = await self.ctx.orders.cancel_order(symbol, client_order_id=coid)
        except OrderNotFound:  # not open any more: it filled, or someone cancelled it
            order = await self.ctx.orders.fetch_order(symbol, client_order_id=coid)
        await self._settle_stop(symbol, order)

    async def refresh_stops(self) -> None:
        """Book the protective stops that filled since the last look (also while no driver was running)."""
        for symbol in list(self.cp["positions"]):
            coid = self.position(symbol).stop_order
            if coid:
                try:
                    order = await self.ctx.orders.fetch_order(symbol, client_order_id=coid)
                    if order.status != "open":
                        await self._settle_stop(symbol, order)
                except ExchangeLayerError as error:
                    self._defer(symbol, error)

    async def _settle_stop(self, symbol: str, order: Order) -> None:
        """A stop that is no longer open: its fill booked first, then the position forgets it (as `_resolve`:
        a failed booking leaves the stop in place, so the next look books it)."""
        if order.status == "open":
            return
        if order.filled > 0:
            await self._book(order, "stop_loss", self._fill_time(order, self.position(symbol).entry_time))
        position = self.position(symbol)
        position.stop_order, position.stop_amount = None, 0.0
        self._set_position(symbol, position)

    # --- booking --------------------------------------------------------------------------------------------
    async def _fees_in_quote(self, order: Order, market: Market, price: float) -> tuple[float, float, float]:
        """(paid in the base, paid in the quote or worth in it, the quote value of all of it)."""
        in_base = order.fee_in(market.base)
        in_quote = order.fee_in(market.quote)
        other = 0.0
        for fee in order.fees:
            if fee.currency in (market.base, market.quote) or fee.cost == 0:
                continue
            other += fee.cost * await self._price_in(fee.currency, market.quote)
        return in_base, in_quote + other, in_quote + other + in_base * price

    async def _price_in(self, currency: str, quote: str) -> float:
        """What one unit of `currency` (a fee asset such as BNB) is worth in `quote`, from either market."""
        for symbol, invert in ((f"{currency}/{quote}", False), (f"{quote}/{currency}", True)):
            try:
                ticker = await self.ctx.exchange.fetch_ticker(symbol)
            except UnknownSymbol:
                continue
            price = ticker.mid or ticker.last
            if price:
                return 1.0 / float(price) if invert else float(price)
        self.ctx.events.emit(
            "Trading",
            "FeeNotValued",
            f"a fee paid in {currency} cannot be valued in {quote} (no {currency}/{quote} market): "
            "it is not in the run's books",
            level="warning",
        )
        return 0.0

    async def _book(self, order: Order, reason: str, candle_time: int) -> None:
        """Book a fill into the run's own cash and position, once per client order id."""
        coid = order.client_order_id or order.id
        booked: dict[str, Any] = self.cp["orders"]
        if coid in booked:
            return
        symbol = order.symbol
        market = self.markets[symbol]
        price = order.average or (order.cost / order.filled if order.filled else 0.0) or order.price or 0.0
        fee_base, fee_charged, fee_value = await self._fees_in_quote(order, market, price)
        position = self.position(symbol)
        if order.side == "buy":
            received = order.filled - fee_base
            spent = order.cost + fee_charged
            self.cp["cash"] = float(self.cp["cash"]) - spent
            amount = position.amount + received
            entry = (position.amount * position.entry_price + order.filled * price) / (position.amount + order.filled)
            started = position.entry_time if position.amount > 0 else candle_time
            stop = risk.stop_price(self.limits, entry)
            position.amount, position.entry_price, position.entry_time = amount, entry, started
            position.stop, position.cost = stop, position.cost + spent
            self._set_position(symbol, position)
            message = f"bought {order.filled:g} {symbol} at {price:.8g} ({coid})"
        else:
            proceeds = order.cost - fee_charged
            self.cp["cash"] = float(self.cp["cash"]) + proceeds
            sold = min(order.filled + fee_base, position.amount)
            basis = position.cost * (sold / position.amount) if position.amount > 0 else 0.0
            pnl = proceeds - basis
            trade = {
                "symbol": symbol,
                "entry_time": position.entry_time,
                "exit_time": candle_time,
                "entry_price": position.entry_price,
                "exit_price": price,
                "amount": order.filled,
                "pnl": pnl,
                "reason": reason,
            }
            append_capped(self.cp["trades"], trade, KEPT_TRADES)
            self.cp["closed_trades"] = int(self.cp.get("closed_trades", 0)) + 1
            self.cp["wins"] = int(self.cp.get("wins", 0)) + (1 if pnl > 0 else 0)
            self.cp["losses"] = int(self.cp.get("losses", 0)) + (1 if pnl < 0 else 0)
            remaining = position.amount - sold
            if market.round_amount(remaining) <= 0:
                if remaining > AMOUNT_TOLERANCE:  # less than one lot step: the account keeps it as dust
                    self.cp["dust"][symbol] = float(self.cp["dust"].get(symbol, 0.0)) + remaining
                self._set_position(symbol, Position(stop_order=position.stop_order, stop_amount=position.stop_amount))
            else:
                position.amount, position.cost = remaining, position.cost - basis
                self._set_position(symbol, position)
            message = f"sold {order.filled:g} {symbol} at {price:.8g} ({reason}), pnl {pnl:+.2f}"
        self.cp["fees"] = float(self.cp.get("fees", 0.0)) + fee_value
        booked[coid] = {
            "symbol": symbol,
            "side": order.side,
            "type": order.type,
            "reason": reason,
            "candle_time": candle_time,
            "filled": order.filled,
            "cost": order.cost,
            "average": price,
            "fee_quote": fee_value,
            "status": order.status,
        }
        while len(booked) > KEPT_ORDERS:
            del booked[next(iter(booked))]
        self.ctx.events.emit(
            "Trading",
            "OrderFilled",
            message,
            metrics={
                "symbol": symbol,
                "side": order.side,
                "price": price,
                "amount": order.filled,
                "fee": fee_value,
                "status": order.status,
                "reason": reason,
                "client_order_id": coid,
            },
        )

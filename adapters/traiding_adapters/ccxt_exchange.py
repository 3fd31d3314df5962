"""`Exchange` over ccxt.async_support, for any ccxt exchange id (Binance first).

A `CcxtExchange` is a handle on a shared `Connection` (get it from `ExchangeHub.get`); every call goes
through the connection's circuit breaker, retries and weight budget. This module only translates between
ccxt's structures and ours.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from traiding.domain.candles import Candles
from traiding.domain.timeframes import timeframe_ms
from traiding_adapters.circuit import CircuitBreaker
from traiding_adapters.client_ids import is_valid_client_order_id
from traiding_adapters.clock import ClockOffset, check_skew
from traiding_adapters.connection import Connection
from traiding_adapters.errors import (
    ExchangeLayerError,
    ExchangeMaintenance,
    InvalidOrder,
    OrderOutcomeUnknown,
    UnknownSymbol,
    clean_message,
)
from traiding_adapters.exchange import (
    Balance,
    CircuitState,
    Fee,
    Health,
    KeyPermissions,
    Market,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Ticker,
)
from traiding_adapters.observer import observe_order
from traiding_adapters.ohlcv import fetch_all_pages
from traiding_adapters.orders import place_order
from traiding_adapters.shared_reads import SharedReads
from traiding_adapters.weights import BINANCE_IDS

DEFAULT_RECV_WINDOW_MS = 10_000  # ccxt's binance default; Binance's own default is 5 000
CLOCK_SLACK_MS = 2_000  # the clock offset is measured to within half a round trip

_STATUSES: dict[str, OrderStatus] = {
    "open": "open",
    "closed": "closed",
    "canceled": "canceled",
    "cancelled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
}


class CcxtExchange:
    """The live exchange through ccxt (see module doc). Implements `traiding_adapters.exchange.Exchange`."""

    def __init__(
        self,
        connection: Connection,
        release: Callable[[], Awaitable[None]],
        shared: SharedReads | None = None,
    ) -> None:
        self._conn = connection
        self._release = release
        self._closed = False
        self.exchange_id = connection.exchange_id
        # The market data every run of the process on this exchange endpoint shares (None: not shared).
        self._shared = shared if connection.settings.market_data_max_age_s > 0 else None

    # -- introspection ---------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The shared ccxt instance (for what this interface does not cover; calls bypass the budget only
        if they bypass ccxt's request path, which nothing in ccxt does)."""
        return self._conn.client

    @property
    def circuit(self) -> CircuitBreaker:
        return self._conn.circuit

    @property
    def circuit_state(self) -> CircuitState:
        return self.circuit.state

    @property
    def connection(self) -> Connection:
        return self._conn

    # -- market data -----------------------------------------------------------------------------------

    async def load_markets(self, reload: bool = False) -> dict[str, Market]:
        """The spot markets with their filters; loaded once per connection (shared by every run)."""
        connection = self._conn
        if connection.markets is not None and not reload:
            return connection.markets
        client = connection.client

        async def load() -> dict[str, Any]:
            async with connection.markets_lock:  # twenty runs starting together load them once
                if client.markets and not reload:
                    return dict(client.markets)
                return dict(await client.load_markets(reload))

        raw = await connection.call(load)
        connection.markets = {
            symbol: market_from_ccxt(client, market) for symbol, market in raw.items() if market.get("spot", True)
        }
        return connection.markets

    async def market(self, symbol: str) -> Market:
        markets = await self.load_markets()
        if symbol not in markets:
            raise UnknownSymbol(
                f"{symbol} is not listed on {self.exchange_id}: check the symbol (e.g. BTC/USDT); "
                f"{len(markets)} spot markets are listed"
            )
        return markets[symbol]

    async def server_time(self) -> int:
        return int(await self._conn.call(self._conn.client.fetch_time))

    async def measure_clock(self, max_skew_ms: int | None = None) -> ClockOffset:
        """Measure the clock offset (and correct signed requests by it); with `max_skew_ms`, raise
        `ClockSkewError` with an actionable message when the raw offset exceeds it."""
        offset = await self._conn.sync_clock()
        if max_skew_ms is not None:
            check_skew(offset, max_skew_ms, self.exchange_id)
        return offset

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        if self._shared is not None:
            held = self._shared.candles(symbol, timeframe).closed_between(since_ms, until_ms)
            if held is not None:  # closed candles another run fetched a moment ago
                return held
        return await self._fetch_ohlcv(symbol, timeframe, since_ms, until_ms)

    async def fetch_recent_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        if self._shared is None:
            return await self._fetch_ohlcv(symbol, timeframe, since_ms, until_ms)

        async def fetch(since: int, until: int) -> Candles:
            return await self._fetch_ohlcv(symbol, timeframe, since, until)

        recent = self._shared.candles(symbol, timeframe)
        return await recent.since(since_ms, until_ms, fetch, self._conn.settings.market_data_max_age_s)

    async def _fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        market = await self.market(symbol)
        client = self._conn.client
        is_binance = self.exchange_id in BINANCE_IDS
        limit = self._conn.settings.ohlcv_page_limit or (1000 if is_binance else 500)
        market_id = client.market(market.symbol)["id"]

        async def binance_page(since: int, until_inclusive: int, size: int) -> list[list[Any]]:
            # the implicit endpoint (same request path, signing, errors and budget as fetch_ohlcv) without
            # ccxt's per-row parsing: numpy converts the rows' decimal strings in one go
            request = {
                "symbol": market_id,
                "interval": timeframe,
                "startTime": since,
                "endTime": until_inclusive,
                "limit": size,
            }
            rows = await self._conn.call(lambda: client.publicGetKlines(request))
            return [row[:6] for row in rows]

        async def unified_page(since: int, until_inclusive: int, size: int) -> list[list[Any]]:
            rows = await self._conn.call(
                lambda: client.fetch_ohlcv(symbol, timeframe, since, size, {"until": until_inclusive})
            )
            return list(rows)

        return await fetch_all_pages(
            binance_page if is_binance else unified_page,
            since_ms=since_ms,
            until_ms=until_ms,
            timeframe_ms=timeframe_ms(timeframe),
            limit=limit,
            empty_page_means_end=is_binance,
        )

    async def fetch_ticker(self, symbol: str) -> Ticker:
        if self._shared is None:
            return await self._fetch_ticker(symbol)
        shared = self._shared.ticker(symbol)
        return await shared.get(
            lambda: self._fetch_ticker(symbol), self._conn.settings.market_data_max_age_s, self._shared.clock
        )

    async def _fetch_ticker(self, symbol: str) -> Ticker:
        client = self._conn.client
        if self.exchange_id in BINANCE_IDS:
            market = await self.market(symbol)
            market_id = client.market(market.symbol)["id"]
            # the implicit endpoint fetch_ticker calls, without ccxt's 24h-statistics parsing
            raw = await self._conn.call(lambda: client.publicGetTicker24hr({"symbol": market_id}))
            return Ticker(
                symbol=symbol,
                timestamp=_int_or_none(raw.get("closeTime")),
                bid=_float_or_none(raw.get("bidPrice")),
                ask=_float_or_none(raw.get("askPrice")),
                last=_float_or_none(raw.get("lastPrice")),
            )
        raw = await self._conn.call(lambda: client.fetch_ticker(symbol))
        return Ticker(
            symbol=symbol,
            timestamp=_int_or_none(raw.get("timestamp")),
            bid=_float_or_none(raw.get("bid")),
            ask=_float_or_none(raw.get("ask")),
            last=_float_or_none(raw.get("last")),
        )

    async def fetch_order_book(self, symbol: str, limit: int = 100) -> OrderBook:
        raw = await self._conn.call(lambda: self._conn.client.fetch_order_book(symbol, limit))
        return OrderBook(
            symbol=symbol,
            timestamp=_int_or_none(raw.get("timestamp")),
            bids=tuple((float(level[0]), float(level[1])) for level in raw.get("bids", [])),
            asks=tuple((float(level[0]), float(level[1])) for level in raw.get("asks", [])),
        )

    # -- account -----------------------------------------------------------------------------------------

    async def fetch_balances(self) -> dict[str, Balance]:
        raw = await self._conn.call(self._conn.client.fetch_balance, signed=True)
        balances: dict[str, Balance] = {}
        for currency, amounts in raw.items():
            if not isinstance(amounts, dict) or "free" not in amounts or currency in {"info", "free", "used", "total"}:
                continue
            free = _float_or_none(amounts.get("free")) or 0.0
            used = _float_or_none(amounts.get("used")) or 0.0
            total = _float_or_none(amounts.get("total"))
            balances[currency] = Balance(currency=currency, free=free, used=used, total=total or free + used)
        return balances

    async def key_permissions(self) -> KeyPermissions:
        """What the key may do. Binance: /sapi/v1/account/apiRestrictions. Others: reading is proven by a
        balance call; trading and withdrawal are unknown (None)."""
        client = self._conn.client
        if self.exchange_id in BINANCE_IDS:
            raw = await self._conn.call(client.sapi_get_account_apirestrictions, signed=True)
            return KeyPermissions(
                can_read=bool(raw.get("enableReading", False)),
                can_trade=bool(raw.get("enableSpotAndMarginTrading", False)),
                can_withdraw=bool(raw.get("enableWithdrawals", False)),
                source=f"{self.exchange_id} /sapi/v1/account/apiRestrictions",
            )
        await self.fetch_balances()
        return KeyPermissions(
            can_read=True,
            can_trade=None,
            can_withdraw=None,
            source=f"{self.exchange_id}: a balance read succeeded; ccxt exposes no permission query",
        )

    # -- orders ------------------------------------------------------------------------------------------

    @property
    def late_order_window_ms(self) -> int:
        """A request on its way is accepted until its signed timestamp is `recvWindow` old (plus clock slack)."""
        recv_window = int(self._conn.client.options.get("recvWindow") or DEFAULT_RECV_WINDOW_MS)
        return recv_window + CLOCK_SLACK_MS

    async def supports_protective_stops(self, symbol: str) -> bool:
        """Whether a stop-limit sell can rest on the exchange for `symbol` (Binance: STOP_LOSS_LIMIT listed)."""
        market = await self.market(symbol)
        client = self._conn.client
        if self.exchange_id in BINANCE_IDS:
            order_types = (client.markets.get(market.symbol, {}).get("info") or {}).get("orderTypes") or []
            return "STOP_LOSS_LIMIT" in order_types
        return bool(client.has.get("createStopLossOrder"))

    async def create_order(self, request: OrderRequest) -> Order:
        """Place the order exactly once (see `orders.place_order`): never retried blindly."""
        if not is_valid_client_order_id(request.client_order_id):
            raise InvalidOrder(
                f"client order id {request.client_order_id!r} must match ^[a-zA-Z0-9-_]{{1,36}}$ "
                "(use traiding_adapters.client_order_id)"
            )
        if request.type in ("limit", "stop_loss_limit") and request.price is None:
            raise InvalidOrder(f"a {request.type} order needs a price")
        if request.type == "stop_loss_limit" and request.stop_price is None:
            raise InvalidOrder("a stop_loss_limit order needs a stop price")
        await self.market(request.symbol)
        settings = self._conn.settings
        submitted = time.perf_counter()
        order = await place_order(
            self,
            request,
            lookup_policy=settings.order_lookup,
            max_sends=settings.order_max_sends,
            settle_s=settings.order_settle_s,
        )
        observe_order(self._conn.observer, self.exchange_id, "live", submitted, order)  # real orders: live runs
        return order

    async def send_order(self, request: OrderRequest) -> Order:
        """One attempt to create the order (no retries; a -1021 re-syncs the clock and sends once more,
        which is safe: the exchange rejected the first one before looking at it)."""
        client = self._conn.client
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        order_type = request.type
        if request.type == "stop_loss_limit":
            # ccxt's unified stop-loss: a limit order with `stopLossPrice` (Binance spot: STOP_LOSS_LIMIT, GTC)
            order_type = "limit"
            params["stopLossPrice"] = request.stop_price
        price = request.price if request.type != "market" else None
        raw = await self._conn.call(
            lambda: client.create_order(request.symbol, order_type, request.side, request.amount, price, params),
            retry=False,
            signed=True,
        )
        order = order_from_ccxt(raw, request.client_order_id)
        try:
            return await self._with_fees(order)
        except ExchangeLayerError as error:
            # The exchange took the order: nothing that fails after its answer may read as "not placed" (an
            # open circuit would), so the caller keeps the intent and books the order when it can read it.
            raise OrderOutcomeUnknown(
                f"order {request.client_order_id} was placed, but its fees could not be read ({error}); "
                "it is booked once they can",
                request.client_order_id,
            ) from error

    async def lookup_order(self, symbol: str, client_order_id: str) -> Order:
        """One attempt to read the order by client order id (OrderNotFound if the exchange lacks it)."""
        client = self._conn.client
        raw = await self._conn.call(
            lambda: client.fetch_order(None, symbol, _client_id_params(self.exchange_id, client_order_id)),
            retry=False,
            signed=True,
        )
        return await self._with_fees(order_from_ccxt(raw, client_order_id))

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> Order:
        client = self._conn.client
        raw = await self._conn.call(
            lambda: client.fetch_order(None, symbol, _client_id_params(self.exchange_id, client_order_id)),
            signed=True,
        )
        return await self._with_fees(order_from_ccxt(raw, client_order_id))

    async def _with_fees(self, order: Order) -> Order:
        """An order read back by its id carries no fills, so no fees (Binance's query endpoint): they come
        from the account's trades of that order, so the run's books never miss a commission."""
        if order.filled <= 0 or order.fees:
            return order
        client = self._conn.client
        if not client.has.get("fetchOrderTrades"):
            return order
        trades = await self._conn.call(lambda: client.fetch_order_trades(order.id, order.symbol), signed=True)
        totals: dict[str, float] = {}
        for trade in trades:
            for fee in trade.get("fees") or ([trade["fee"]] if trade.get("fee") else []):
                if fee.get("cost") is not None:
                    currency = str(fee.get("currency") or "")
                    totals[currency] = totals.get(currency, 0.0) + float(fee["cost"])
        fees = tuple(Fee(currency=currency, cost=cost) for currency, cost in totals.items())
        return order.model_copy(update={"fees": fees})

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order:
        """Cancel by client order id. Retried on transient errors: cancelling twice is harmless."""
        client = self._conn.client
        raw = await self._conn.call(
            lambda: client.cancel_order(None, symbol, _client_id_params(self.exchange_id, client_order_id)),
            signed=True,
        )
        # Binance's answer names the cancel request's own id as `clientOrderId` (the order's is
        # `origClientOrderId`): the order keeps the id it is known by.
        order = order_from_ccxt(raw, client_order_id).model_copy(update={"client_order_id": client_order_id})
        return await self._with_fees(order)

    # -- health ------------------------------------------------------------------------------------------

    async def health(self) -> Health:
        """A quick probe that never raises: reachability and latency (server time, no retries), maintenance
        (fetch_status), clock offset (also re-applied to signed requests) and the circuit state. While the
        circuit is half-open this probe is the one call that may test the exchange."""
        client = self._conn.client
        circuit = self._conn.circuit
        offset: ClockOffset | None = None
        latency_ms: float | None = None
        try:
            if client.has.get("fetchTime"):
                started = time.perf_counter()
                offset = await self._conn.sync_clock(retry=False)
                latency_ms = (time.perf_counter() - started) * 1000 / offset.samples
            status_raw: dict[str, Any] = {"status": "ok"}
            if client.has.get("fetchStatus"):
                status_raw = await self._conn.call(client.fetch_status, retry=False)
        except Exception as error:
            mapped = error if isinstance(error, ExchangeLayerError) else self._conn.map_error(error)
            in_maintenance = isinstance(mapped, ExchangeMaintenance)
            return Health(
                exchange_id=self.exchange_id,
                reachable=in_maintenance or not mapped.transient,
                maintenance=True if in_maintenance else None,
                status="maintenance" if in_maintenance else ("unreachable" if mapped.transient else "error"),
                clock_offset_ms=offset.offset_ms if offset else None,
                latency_ms=latency_ms,
                circuit=circuit.state,
                last_error=str(mapped),
            )
        status = clean_message(str(status_raw.get("status") or "ok"), limit=40)  # the exchange's own word
        return Health(
            exchange_id=self.exchange_id,
            reachable=True,
            maintenance=status == "maintenance",
            status=status,
            clock_offset_ms=offset.offset_ms if offset else None,
            latency_ms=latency_ms,
            circuit=circuit.state,
            last_error=circuit.last_error,
        )

    async def close(self) -> None:
        """Give this handle's reference back; the last handle closes the shared session."""
        if not self._closed:
            self._closed = True
            await self._release()

    async def __aenter__(self) -> CcxtExchange:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


def _client_id_params(exchange_id: str, client_order_id: str) -> dict[str, str]:
    if exchange_id in BINANCE_IDS:
        return {"origClientOrderId": client_order_id}
    return {"clientOrderId": client_order_id}


def market_from_ccxt(client: Any, raw: dict[str, Any]) -> Market:
    precision = raw.get("precision") or {}
    limits = raw.get("limits") or {}
    amount_limits = limits.get("amount") or {}
    cost_limits = limits.get("cost") or {}
    tick_mode = getattr(client, "precisionMode", None) == 4  # ccxt TICK_SIZE
    amount_p = _float_or_none(precision.get("amount"))
    price_p = _float_or_none(precision.get("price"))
    if tick_mode:
        step, tick = amount_p, price_p
        amount_decimals = _decimals_of(step)
        price_decimals = _decimals_of(tick)
    else:
        amount_decimals = int(amount_p) if amount_p is not None else None
        price_decimals = int(price_p) if price_p is not None else None
        step = 10.0**-amount_decimals if amount_decimals is not None else None
        tick = 10.0**-price_decimals if price_decimals is not None else None
    return Market(
        symbol=str(raw["symbol"]),
        base=str(raw.get("base") or ""),
        quote=str(raw.get("quote") or ""),
        active=bool(raw.get("active", True) if raw.get("active") is not None else True),
        min_notional=_float_or_none(cost_limits.get("min")),
        min_qty=_float_or_none(amount_limits.get("min")),
        max_qty=_float_or_none(amount_limits.get("max")),
        step_size=step,
        tick_size=tick,
        amount_precision=amount_decimals,
        price_precision=price_decimals,
    )


_TYPES: dict[str, OrderType] = {"limit": "limit", "market": "market", "stop_loss_limit": "stop_loss_limit"}


def order_from_ccxt(raw: dict[str, Any], client_order_id: str | None) -> Order:
    amount = _float_or_none(raw.get("amount")) or 0.0
    filled = _float_or_none(raw.get("filled")) or 0.0
    remaining = _float_or_none(raw.get("remaining"))
    average = _float_or_none(raw.get("average"))
    cost = _float_or_none(raw.get("cost"))
    totals: dict[str, float] = {}
    for fee_raw in raw.get("fees") or ([raw["fee"]] if raw.get("fee") else []):
        if fee_raw and fee_raw.get("cost") is not None:
            currency = str(fee_raw.get("currency") or "")
            totals[currency] = totals.get(currency, 0.0) + float(fee_raw["cost"])
    fees = tuple(Fee(currency=currency, cost=fee_cost) for currency, fee_cost in totals.items() if fee_cost)
    side = raw.get("side")
    stop_price = _float_or_none(raw.get("triggerPrice") or raw.get("stopPrice"))
    order_type = _TYPES.get(str(raw.get("type")), "market")
    if order_type == "limit" and stop_price:
        order_type = "stop_loss_limit"
    return Order(
        id=str(raw.get("id")),
        client_order_id=raw.get("clientOrderId") or client_order_id,
        symbol=str(raw.get("symbol")),
        side="sell" if side == "sell" else "buy",
        type=order_type,
        status=_STATUSES.get(str(raw.get("status")), "open"),
        amount=amount,
        filled=filled,
        remaining=remaining if remaining is not None else max(amount - filled, 0.0),
        price=_float_or_none(raw.get("price")),
        stop_price=stop_price,
        average=average,
        cost=cost if cost is not None else (average or 0.0) * filled,
        fees=fees,
        timestamp=_int_or_none(raw.get("timestamp")),
        last_trade_timestamp=_int_or_none(raw.get("lastTradeTimestamp")),
    )


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _int_or_none(value: Any) -> int | None:
    number = _float_or_none(value)
    return int(number) if number is not None else None


def _decimals_of(step: float | None) -> int | None:
    if not step:
        return None
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0

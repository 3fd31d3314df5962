"""The exchange interface the pipeline phases use, and the frozen models it speaks.

Implementations: `CcxtExchange` (any ccxt exchange, live), `PaperBroker` (dry runs: real prices, simulated
orders). Amounts are in the base currency, prices and costs in the quote currency, times in epoch ms.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from traiding.domain.candles import Candles

OrderSide = Literal["buy", "sell"]
# stop_loss_limit: a resting sell (or buy) that becomes a limit order at `price` once the market reaches
# `stop_price` (Binance spot STOP_LOSS_LIMIT), the protective stop a position leaves on the exchange.
OrderType = Literal["market", "limit", "stop_loss_limit"]
OrderStatus = Literal["open", "closed", "canceled", "expired", "rejected"]
CircuitState = Literal["closed", "open", "half-open"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Market(_Frozen):
    """A symbol's trading rules (Binance: LOT_SIZE, PRICE_FILTER, NOTIONAL/MIN_NOTIONAL filters)."""

    symbol: str
    base: str
    quote: str
    active: bool = True
    min_notional: float | None = None
    min_qty: float | None = None
    max_qty: float | None = None
    step_size: float | None = None
    tick_size: float | None = None
    amount_precision: int | None = None  # decimals of an amount
    price_precision: int | None = None  # decimals of a price

    def round_amount(self, amount: float) -> float:
        """`amount` rounded DOWN to the step size (an order never exceeds what was asked)."""
        return _floor_to_step(amount, self.step_size, self.amount_precision)

    def round_price(self, price: float) -> float:
        """`price` rounded to the nearest tick."""
        if self.tick_size:
            decimals = _decimals(self.tick_size)
            return round(round(price / self.tick_size) * self.tick_size, decimals)
        return round(price, self.price_precision) if self.price_precision is not None else price

    def violations(self, amount: float, price: float) -> list[str]:
        """Why an order of `amount` at about `price` would be rejected by the symbol filters ([] if fine)."""
        problems: list[str] = []
        if self.min_qty is not None and amount < self.min_qty:
            problems.append(f"amount {amount} below the minimum quantity {self.min_qty} of {self.symbol}")
        if self.max_qty is not None and amount > self.max_qty:
            problems.append(f"amount {amount} above the maximum quantity {self.max_qty} of {self.symbol}")
        if self.min_notional is not None and amount * price < self.min_notional:
            problems.append(
                f"order value {amount * price:.8g} {self.quote} below the minimum notional "
                f"{self.min_notional} {self.quote} of {self.symbol}"
            )
        return problems


class Ticker(_Frozen):
    symbol: str
    timestamp: int | None
    bid: float | None
    ask: float | None
    last: float | None

    @property
    def mid(self) -> float | None:
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        return self.last


class OrderBook(_Frozen):
    """Bids descending, asks ascending, each level (price, amount)."""

    symbol: str
    timestamp: int | None
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]


class Balance(_Frozen):
    currency: str
    free: float
    used: float
    total: float


class KeyPermissions(_Frozen):
    """What an API key may do; None where the exchange does not tell (`source` says how it was learnt)."""

    can_read: bool
    can_trade: bool | None
    can_withdraw: bool | None
    source: str


class OrderRequest(_Frozen):
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    price: float | None = None  # the limit price (limit and stop_loss_limit orders)
    stop_price: float | None = None  # the trigger price of a stop_loss_limit order
    client_order_id: str


class Fee(_Frozen):
    currency: str
    cost: float


class Order(_Frozen):
    id: str
    client_order_id: str | None
    symbol: str
    side: OrderSide
    type: OrderType
    status: OrderStatus
    amount: float
    filled: float
    remaining: float
    price: float | None = None
    stop_price: float | None = None
    average: float | None = None
    cost: float
    fees: tuple[Fee, ...] = ()  # every fee charged, per currency (a buy on Binance pays in the base, or in BNB)
    timestamp: int | None = None
    last_trade_timestamp: int | None = None  # when the last fill happened (a stop fills long after it was placed)

    def fee_in(self, currency: str) -> float:
        return sum(fee.cost for fee in self.fees if fee.currency == currency)


class Position(_Frozen):
    """A spot position: base currency held through a symbol, with its volume-weighted entry price."""

    symbol: str
    amount: float
    average_entry: float


class Health(_Frozen):
    exchange_id: str
    reachable: bool
    maintenance: bool | None
    status: str  # "ok", "maintenance", "unreachable", ...
    clock_offset_ms: int | None  # the exchange's time minus ours
    latency_ms: float | None
    circuit: CircuitState
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and not self.maintenance and self.circuit != "open"


@runtime_checkable
class MarketData(Protocol):
    """The read-only half: what a paper broker needs from a real exchange."""

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_order_book(self, symbol: str, limit: int = 100) -> OrderBook: ...


@runtime_checkable
class CandleData(Protocol):
    """Candles of the market: the paper broker replays resting stops against the path since they were placed."""

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        """Every stored candle with open time in [since_ms, until_ms), ascending, paginated underneath."""
        ...

    async def fetch_recent_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        """The same for the present (`until_ms` in the future: up to now, the last candle possibly still
        forming), as of a moment ago: an answer may be shared with other readers of the market."""
        ...


@runtime_checkable
class OrderApi(Protocol):
    """The order half, implemented by the live exchange and by the paper broker alike."""

    async def fetch_balances(self) -> dict[str, Balance]: ...

    async def create_order(self, request: OrderRequest) -> Order: ...

    async def cancel_order(self, symbol: str, *, client_order_id: str) -> Order: ...

    async def fetch_order(self, symbol: str, *, client_order_id: str) -> Order: ...

    async def supports_protective_stops(self, symbol: str) -> bool:
        """Whether a stop_loss_limit sell can rest on the exchange for `symbol`."""
        ...

    @property
    def late_order_window_ms(self) -> int:
        """How long after a send was given up an order may still appear: a request already on its way is
        accepted until its signed timestamp is older than the exchange's receive window. 0 where a send that
        did not answer cannot have placed anything (the paper account lives in the run's checkpoint)."""
        ...


@runtime_checkable
class Exchange(MarketData, CandleData, OrderApi, Protocol):
    """An exchange as the pipeline sees it."""

    exchange_id: str

    @property
    def circuit_state(self) -> CircuitState:
        """The circuit breaker's state, without a request: "closed" is healthy."""
        ...

    async def load_markets(self) -> dict[str, Market]: ...

    async def server_time(self) -> int: ...

    async def key_permissions(self) -> KeyPermissions: ...

    async def health(self) -> Health: ...

    async def close(self) -> None: ...


def _decimals(step: float) -> int:
    text = f"{step:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def _floor_to_step(value: float, step: float | None, precision: int | None) -> float:
    if step:
        decimals = _decimals(step)
        # the epsilon absorbs binary noise (0.3 / 0.1 = 2.9999999999999996)
        return round(math.floor(value / step + 1e-9) * step, decimals)
    if precision is not None:
        factor = 10.0**precision
        return math.floor(value * factor + 1e-9) / factor
    return value

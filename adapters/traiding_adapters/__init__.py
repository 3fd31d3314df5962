"""The exchange layer: one interface (`Exchange`), its ccxt implementation behind a shared per-key weight
budget, retries, a circuit breaker and clock correction, and a paper broker for dry runs.

    hub = default_hub()
    exchange = hub.get("binance", Credentials(key, secret, source="Secret binance-keys"))
    try:
        candles = await exchange.fetch_ohlcv("BTC/USDT", "5m", since_ms, until_ms)
    finally:
        await exchange.close()
"""

from traiding_adapters.ccxt_exchange import CcxtExchange
from traiding_adapters.circuit import CircuitBreaker
from traiding_adapters.client_ids import client_order_id, is_valid_client_order_id
from traiding_adapters.clock import ClockOffset, check_skew
from traiding_adapters.connection import Credentials, ExchangeSettings
from traiding_adapters.errors import (
    AuthenticationFailed,
    CircuitOpen,
    ClockSkewError,
    DuplicateOrder,
    ExchangeLayerError,
    ExchangeMaintenance,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    NotSupportedByExchange,
    OrderNotFound,
    OrderOutcomeUnknown,
    PermissionDenied,
    RateLimited,
    UnknownExchange,
    UnknownSymbol,
)
from traiding_adapters.exchange import (
    Balance,
    Exchange,
    Fee,
    Health,
    KeyPermissions,
    Market,
    MarketData,
    Order,
    OrderApi,
    OrderBook,
    OrderRequest,
    Position,
    Ticker,
)
from traiding_adapters.hub import ExchangeHub, default_hub
from traiding_adapters.paper import PaperBroker, PaperSettings
from traiding_adapters.ratelimit import BudgetStats, WeightBudget
from traiding_adapters.retry import RetryPolicy, is_transient

__all__ = [
    "AuthenticationFailed",
    "Balance",
    "BudgetStats",
    "CcxtExchange",
    "CircuitBreaker",
    "CircuitOpen",
    "ClockOffset",
    "ClockSkewError",
    "Credentials",
    "DuplicateOrder",
    "Exchange",
    "ExchangeHub",
    "ExchangeLayerError",
    "ExchangeMaintenance",
    "ExchangeRejected",
    "ExchangeSettings",
    "ExchangeUnavailable",
    "Fee",
    "Health",
    "InsufficientFunds",
    "InvalidOrder",
    "KeyPermissions",
    "Market",
    "MarketData",
    "NotSupportedByExchange",
    "Order",
    "OrderApi",
    "OrderBook",
    "OrderNotFound",
    "OrderOutcomeUnknown",
    "OrderRequest",
    "PaperBroker",
    "PaperSettings",
    "PermissionDenied",
    "Position",
    "RateLimited",
    "RetryPolicy",
    "Ticker",
    "UnknownExchange",
    "UnknownSymbol",
    "WeightBudget",
    "check_skew",
    "client_order_id",
    "default_hub",
    "is_transient",
    "is_valid_client_order_id",
]

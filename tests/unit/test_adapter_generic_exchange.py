"""CcxtExchange on a non-Binance ccxt exchange (a fake ccxt object): unified calls, weights in ccxt units,
the permissions that can be known, and OHLCV pages that stop at a window."""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt
import pytest

from traiding_adapters.ccxt_exchange import CcxtExchange
from traiding_adapters.connection import Connection, Credentials, ExchangeSettings
from traiding_adapters.errors import CircuitOpen, OrderOutcomeUnknown
from traiding_adapters.exchange import OrderRequest
from traiding_adapters.ratelimit import WeightBudget
from traiding_adapters.retry import RetryPolicy
from traiding_adapters.weights import declared_weight_limit, default_weight_limit, request_weight, used_weight

TF = 3_600_000


class FakeKraken:
    id = "kraken"
    rateLimit = 3000
    precisionMode = 2  # DECIMAL_PLACES

    def __init__(self) -> None:
        self.has = {"fetchTime": False, "fetchStatus": True}
        self.options: dict[str, Any] = {}
        self.markets: dict[str, Any] = {}
        self.last_response_headers: dict[str, str] | None = None
        self.costs: list[float] = []
        self.stored = [[t * TF, 1.0, 2.0, 0.5, 1.5, 3.0] for t in [*range(10), *range(40, 45)]]

    def calculate_rate_limiter_cost(self, api: Any, method: str, path: str, params: Any, config: Any) -> float:
        return 1.0

    async def fetch2(self, path: str, api: Any, method: str, params: Any, config: Any) -> Any:
        self.costs.append(request_weight(self, api, method, path, params=params, config=config))
        return {}

    def market(self, symbol: str) -> dict[str, Any]:
        return {"id": symbol.replace("/", "")}

    async def load_markets(self, reload: bool = False) -> dict[str, Any]:
        await self.fetch2("AssetPairs", "public", "GET", {}, {})
        self.markets = {
            "BTC/USD": {
                "symbol": "BTC/USD",
                "base": "BTC",
                "quote": "USD",
                "spot": True,
                "precision": {"amount": 8, "price": 1},
                "limits": {"amount": {"min": 0.0001}, "cost": {"min": 0.5}},
            },
            "BTC/USD:USD": {"symbol": "BTC/USD:USD", "spot": False},
        }
        return self.markets

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        await self.fetch2("Ticker", "public", "GET", {}, {})
        return {"timestamp": 1, "bid": 99.5, "ask": 100.5, "last": 100.0}

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int, params: Any) -> list[Any]:
        await self.fetch2("OHLC", "public", "GET", {}, {})
        # answers only the window [since, since + limit * tf): a wide gap gives empty pages
        return [r for r in self.stored if since <= r[0] < since + limit * TF and r[0] <= params["until"]]

    async def fetch_balance(self) -> dict[str, Any]:
        await self.fetch2("Balance", "private", "POST", {}, {})
        return {"info": {}, "USD": {"free": 10.0, "used": 1.0, "total": 11.0}, "free": {"USD": 10.0}}

    async def fetch_status(self) -> dict[str, Any]:
        return {"status": "ok"}

    async def close(self) -> None:
        return None


def exchange(client: FakeKraken) -> CcxtExchange:
    settings = ExchangeSettings(ohlcv_page_limit=5)
    budget = WeightBudget(default_weight_limit(client))
    conn = Connection("kraken", client, budget, settings, Credentials("k", "s"), learn_limit=True)

    async def release() -> None:
        await conn.close()

    return CcxtExchange(conn, release)


async def test_unified_calls_and_spot_markets_only() -> None:
    client = FakeKraken()
    ex = exchange(client)
    markets = await ex.load_markets()
    assert list(markets) == ["BTC/USD"]
    assert markets["BTC/USD"].step_size == pytest.approx(1e-8)
    ticker = await ex.fetch_ticker("BTC/USD")
    assert ticker.mid == pytest.approx(100.0)
    balances = await ex.fetch_balances()
    assert set(balances) == {"USD"}
    assert balances["USD"].total == 11.0
    health = await ex.health()
    assert health.ok and health.clock_offset_ms is None
    assert client.costs and all(cost == 1.0 for cost in client.costs)  # ccxt units for non-Binance


async def test_permissions_beyond_reading_are_unknown() -> None:
    permissions = await exchange(FakeKraken()).key_permissions()
    assert permissions.can_read is True
    assert permissions.can_trade is None and permissions.can_withdraw is None
    assert "kraken" in permissions.source


async def test_ohlcv_keeps_going_through_empty_windows() -> None:
    client = FakeKraken()
    candles = await exchange(client).fetch_ohlcv("BTC/USD", "1h", 0, 50 * TF)
    assert candles.time.tolist() == [r[0] for r in client.stored]


def test_weight_helpers() -> None:
    assert default_weight_limit(FakeKraken()) == pytest.approx(20.0)  # 60000 / 3000 ms
    assert (
        declared_weight_limit({"rateLimits": [{"rateLimitType": "ORDERS", "interval": "MINUTE", "limit": 1}]}) is None
    )
    assert (
        declared_weight_limit({"rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "limit": 9}]})
        is None
    )
    two_minutes = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 2, "limit": 200}
    assert declared_weight_limit({"rateLimits": [two_minutes]}) == pytest.approx(100)
    assert declared_weight_limit("not a dict") is None
    assert used_weight({"x-mbx-used-weight-1m": "42"}) == 42
    assert used_weight({"X-MBX-USED-WEIGHT-1M": "junk"}) is None
    assert used_weight(None) is None


class ZeroFeeKraken(FakeKraken):
    """Fills at once and names no fee (a zero-fee pair), so the layer reads the order's trades for them."""

    def __init__(self) -> None:
        super().__init__()
        self.has = {"fetchTime": False, "fetchStatus": True, "fetchOrderTrades": True}
        self.created: list[str] = []

    async def create_order(  # noqa: PLR0917 - ccxt's signature
        self, symbol: str, type_: str, side: str, amount: float, price: float | None, params: dict[str, Any]
    ) -> dict[str, Any]:
        self.created.append(params["clientOrderId"])
        return {
            "id": "1",
            "clientOrderId": params["clientOrderId"],
            "symbol": symbol,
            "side": side,
            "type": type_,
            "status": "closed",
            "amount": amount,
            "filled": amount,
            "average": 100.0,
            "cost": 100.0 * amount,
        }

    async def fetch_order_trades(self, order_id: str, symbol: str) -> list[Any]:
        raise ccxt.NetworkError("502 Bad Gateway")


async def test_a_failure_after_the_exchange_took_the_order_never_reads_as_not_placed() -> None:
    # The trades look-up after the fill fails until the circuit opens: the order exists all the same.
    client = ZeroFeeKraken()
    settings = ExchangeSettings(
        failure_threshold=3, retry=RetryPolicy(initial_wait_s=0.001, max_wait_s=0.001, jitter_s=0)
    )
    connection = Connection(
        "kraken", client, WeightBudget(default_weight_limit(client)), settings, Credentials("k", "s"), learn_limit=True
    )

    async def release() -> None:
        return None

    exchange = CcxtExchange(connection, release)
    await exchange.load_markets()
    request = OrderRequest(symbol="BTC/USD", side="buy", type="market", amount=0.01, client_order_id="tabc")
    with pytest.raises(OrderOutcomeUnknown) as raised:
        await exchange.create_order(request)
    assert not isinstance(raised.value, CircuitOpen)
    assert raised.value.client_order_id == "tabc"
    assert client.created == ["tabc"]  # sent once, never again

"""The Binance spot endpoints: request weight, security type and a handler each.

Handlers are plain functions of a `Ctx`: the middleware in server.py has already charged the weight,
applied faults, verified the signature and matched resting orders up to the replay "now".
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from traiding_simulator import errors
from traiding_simulator.auth import epoch_ms
from traiding_simulator.config import ApiKeyConfig
from traiding_simulator.engine import AVG_PRICE_MINUTES, ORDER_TYPES, Order
from traiding_simulator.filters import fmt
from traiding_simulator.market import DAY_MS, KLINE_INTERVALS, SymbolMarket
from traiding_simulator.state import SimState

Security = Literal["NONE", "API_KEY", "SIGNED"]
Params = dict[str, str]


@dataclass
class Ctx:
    state: SimState
    params: Params
    key: ApiKeyConfig | None
    now: int  # replay clock
    server_time: int  # exchange wall clock

    @property
    def account(self) -> str:
        assert self.key is not None  # nosec B101  # narrows a type; not an input check
        return self.key.account


Handler = Callable[[Ctx], Any]
Weight = Callable[[Params], int]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    weight: Weight
    security: Security = "NONE"
    trade: bool = False  # needs enableSpotAndMarginTrading
    new_order: bool = False  # counts against the ORDERS limits

    @property
    def bucket(self) -> Literal["api", "sapi"]:
        return "sapi" if self.path.startswith("/sapi/") else "api"

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


def fixed(weight: int) -> Weight:
    return lambda _params: weight


def by_symbol(with_symbol: int, without: int) -> Weight:
    return lambda params: with_symbol if params.get("symbol") else without


def by_symbols(one: int, all_symbols: int, per_symbol_steps: tuple[tuple[int, int], ...] = ()) -> Weight:
    def weight(params: Params) -> int:
        if params.get("symbol"):
            return one
        if params.get("symbols"):
            count = len(_symbols_param(params["symbols"]))
            for upto, value in per_symbol_steps:
                if count <= upto:
                    return value
        return all_symbols

    return weight


def depth_weight(params: Params) -> int:
    limit = _int(params, "limit", 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


# --- parameter helpers
def _int(params: Params, name: str, default: int | None = None) -> int:
    text = params.get(name)
    if text is None or text == "":
        if default is None:
            raise errors.missing_param(name)
        return default
    try:
        return int(text)
    except ValueError:
        raise errors.bad_param(name) from None


def _opt_int(params: Params, name: str) -> int | None:
    return _int(params, name) if params.get(name) else None


def _opt_time(params: Params, name: str) -> int | None:
    """A time parameter (startTime, endTime) in milliseconds; Binance takes milliseconds or microseconds."""
    value = _opt_int(params, name)
    return int(epoch_ms(value)) if value is not None else None


def _symbols_param(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise errors.BinanceError(400, -1100, "Illegal characters found in parameter 'symbols'.") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.BinanceError(400, -1100, "Illegal characters found in parameter 'symbols'.")
    return [str(v) for v in value]


def _symbol(ctx: Ctx) -> SymbolMarket:
    symbol_id = ctx.params.get("symbol")
    if not symbol_id:
        raise errors.missing_param("symbol")
    symbol = ctx.state.market.get(symbol_id.upper())
    if symbol is None:
        raise errors.invalid_symbol()
    return symbol


def _selected_symbols(ctx: Ctx) -> tuple[list[SymbolMarket], bool]:
    """The symbols a ticker request names and whether it named exactly one with `symbol`."""
    if ctx.params.get("symbol"):
        return [_symbol(ctx)], True
    if ctx.params.get("symbols"):
        out = []
        for symbol_id in _symbols_param(ctx.params["symbols"]):
            symbol = ctx.state.market.get(symbol_id.upper())
            if symbol is None:
                raise errors.invalid_symbol()
            out.append(symbol)
        return out, False
    return list(ctx.state.market.by_id.values()), False


# --- general
def ping(_ctx: Ctx) -> Any:
    return {}


def server_time(ctx: Ctx) -> Any:
    return {"serverTime": ctx.server_time}


def _symbol_info(symbol: SymbolMarket) -> dict[str, Any]:
    return {
        "symbol": symbol.id,
        "status": "TRADING",
        "baseAsset": symbol.base_asset,
        "baseAssetPrecision": 8,
        "quoteAsset": symbol.quote_asset,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": symbol.rules.exchange_info_filters(),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "NONE"],
    }


def exchange_info(ctx: Ctx) -> Any:
    symbols, _ = _selected_symbols(ctx)
    config = ctx.state.config
    return {
        "timezone": "UTC",
        "serverTime": ctx.server_time,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": config.weight_limit},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": config.order_limit_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": config.order_limit_1d},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ],
        "exchangeFilters": [],
        "symbols": [_symbol_info(s) for s in symbols],
    }


def empty_exchange_info(ctx: Ctx) -> Any:
    """Futures exchangeInfo: no contracts here, so ccxt's default load_markets (spot+linear+inverse) works."""
    return {"timezone": "UTC", "serverTime": ctx.server_time, "rateLimits": [], "assets": [], "symbols": []}


# --- market data
def klines(ctx: Ctx) -> Any:
    symbol = _symbol(ctx)
    interval = ctx.params.get("interval")
    if not interval:
        raise errors.missing_param("interval")
    if interval not in KLINE_INTERVALS:
        raise errors.invalid_interval()
    limit = min(max(_int(ctx.params, "limit", 500), 1), 1000)
    start, end = _opt_time(ctx.params, "startTime"), _opt_time(ctx.params, "endTime")
    return RawJson(symbol.klines_json(interval, start, end, limit, ctx.now))


@dataclass(frozen=True)
class RawJson:
    """An already-serialised JSON body (klines are formatted once and cached as text)."""

    text: str


def depth(ctx: Ctx) -> Any:
    """The book orders are matched against (`Exchange.order_book`): the same levels, as deep as asked."""
    symbol = _symbol(ctx)
    limit = min(max(_int(ctx.params, "limit", 100), 1), 5000)
    book = ctx.state.exchange.order_book(symbol, ctx.now, limit)
    return {
        "lastUpdateId": ctx.now // 100,
        "bids": [[fmt(level.price), fmt(level.qty)] for level in book.bids],
        "asks": [[fmt(level.price), fmt(level.qty)] for level in book.asks],
    }


def _one_or_list(items: list[dict[str, Any]], single: bool) -> Any:
    return items[0] if single else items


def ticker_price(ctx: Ctx) -> Any:
    symbols, single = _selected_symbols(ctx)
    return _one_or_list([{"symbol": s.id, "price": s.price_text(s.price_at(ctx.now))} for s in symbols], single)


def book_ticker(ctx: Ctx) -> Any:
    symbols, single = _selected_symbols(ctx)
    out = []
    for s in symbols:
        bid, ask = ctx.state.exchange.touch(s, ctx.now)
        out.append(
            {
                "symbol": s.id,
                "bidPrice": fmt(bid.price),
                "bidQty": fmt(bid.qty),
                "askPrice": fmt(ask.price),
                "askQty": fmt(ask.qty),
            }
        )
    return _one_or_list(out, single)


def ticker_24hr(ctx: Ctx) -> Any:
    symbols, single = _selected_symbols(ctx)
    mini = ctx.params.get("type", "FULL").upper() == "MINI"
    out = []
    for s in symbols:
        w = s.window(ctx.now - DAY_MS, ctx.now)
        bid, ask = ctx.state.exchange.touch(s, ctx.now)
        price = s.price_text
        entry: dict[str, Any] = {
            "symbol": s.id,
            "openPrice": price(w.open),
            "highPrice": price(w.high),
            "lowPrice": price(w.low),
            "lastPrice": price(w.close),
            "volume": f"{w.volume:.8f}",
            "quoteVolume": f"{w.quote_volume:.8f}",
            "openTime": ctx.now - DAY_MS,
            "closeTime": ctx.now,
            "firstId": 0,
            "lastId": max(w.count - 1, 0),
            "count": w.count,
        }
        if not mini:
            change = w.close - w.open
            entry.update(
                priceChange=price(change),
                priceChangePercent=f"{(change / w.open * 100 if w.open else 0):.3f}",
                weightedAvgPrice=f"{(w.quote_volume / w.volume if w.volume else w.close):.8f}",
                prevClosePrice=price(w.open),
                lastQty=fmt(symbol_min_qty(s)),
                bidPrice=fmt(bid.price),
                bidQty=fmt(bid.qty),
                askPrice=fmt(ask.price),
                askQty=fmt(ask.qty),
            )
        out.append(entry)
    return _one_or_list(out, single)


def symbol_min_qty(symbol: SymbolMarket) -> Decimal:
    return symbol.rules.min_qty


def avg_price(ctx: Ctx) -> Any:
    """Binance's average price: volume-weighted over the last 5 minutes (what NOTIONAL checks MARKET orders at)."""
    symbol = _symbol(ctx)
    average = symbol.average_price(ctx.now, AVG_PRICE_MINUTES)
    return {"mins": AVG_PRICE_MINUTES, "price": f"{average:.8f}", "closeTime": ctx.now}


# --- account and orders
def account(ctx: Ctx) -> Any:
    key = ctx.key
    assert key is not None  # nosec B101  # narrows a type; not an input check
    acct = ctx.state.exchange.account(key.account)
    omit_zero = ctx.params.get("omitZeroBalances", "false").lower() == "true"
    fee = ctx.state.config
    return {
        "makerCommission": int(fee.maker_fee * 10_000),
        "takerCommission": int(fee.taker_fee * 10_000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": fmt(fee.maker_fee),
            "taker": fmt(fee.taker_fee),
            "buyer": fmt(Decimal(0)),
            "seller": fmt(Decimal(0)),
        },
        "canTrade": key.can_trade,
        "canWithdraw": key.can_withdraw,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": acct.update_time,
        "accountType": "SPOT",
        "balances": [
            {"asset": asset, "free": fmt(b.free), "locked": fmt(b.locked)}
            for asset, b in sorted(acct.balances.items())
            if not (omit_zero and b.free == 0 and b.locked == 0)
        ],
        "permissions": ["SPOT"],
        "uid": zlib.crc32(key.account.encode()),
    }


def _resp_type(ctx: Ctx) -> str:
    """The answer asked for; without one, Binance's default: FULL for MARKET and LIMIT orders, ACK for the others."""
    resp_type = (ctx.params.get("newOrderRespType") or "").upper()
    if resp_type and resp_type not in {"ACK", "RESULT", "FULL"}:
        raise errors.BinanceError(400, -1100, "Illegal characters found in parameter 'newOrderRespType'.")
    if resp_type:
        return resp_type
    return "FULL" if (ctx.params.get("type") or "").upper() in {"MARKET", "LIMIT"} else "ACK"


def new_order(ctx: Ctx) -> Any:
    resp_type = _resp_type(ctx)
    order = ctx.state.exchange.place(ctx.account, ctx.params, ctx.now)
    return order.place_response(resp_type)


def test_order(ctx: Ctx) -> Any:
    ctx.state.exchange.place(ctx.account, ctx.params, ctx.now, test=True)
    if ctx.params.get("computeCommissionRates", "false").lower() == "true":
        fee = ctx.state.config
        rates = {"maker": fmt(fee.maker_fee), "taker": fmt(fee.taker_fee)}
        return {
            "standardCommissionForOrder": rates,
            "taxCommissionForOrder": {"maker": fmt(Decimal(0)), "taker": fmt(Decimal(0))},
            "discount": {
                "enabledForAccount": False,
                "enabledForSymbol": False,
                "discountAsset": "BNB",
                "discount": "0.25000000",
            },
        }
    return {}


def query_order(ctx: Ctx) -> Any:
    return ctx.state.exchange.find(ctx.account, ctx.params).to_json()


def _cancel_json(order: Order, params: Params) -> dict[str, Any]:
    data = order.to_json(with_times=False)
    data["origClientOrderId"] = order.client_order_id
    data["clientOrderId"] = params.get("newClientOrderId") or f"cancel-{order.order_id}"
    data["transactTime"] = order.update_time
    data["origQuoteOrderQty"] = fmt(order.orig_quote_qty)
    data["selfTradePreventionMode"] = "EXPIRE_MAKER"
    return data


def cancel_order(ctx: Ctx) -> Any:
    order = ctx.state.exchange.cancel(ctx.account, ctx.params, ctx.now)
    return _cancel_json(order, ctx.params)


def _account_orders(ctx: Ctx, symbol_id: str | None, only_open: bool) -> list[Order]:
    exchange = ctx.state.exchange
    source = {**exchange.open_orders, **exchange.stop_orders} if only_open else exchange.orders
    found = [o for o in source.values() if o.account == ctx.account and (symbol_id is None or o.symbol == symbol_id)]
    return sorted(found, key=lambda o: o.order_id)


def open_orders(ctx: Ctx) -> Any:
    symbol_id = _symbol(ctx).id if ctx.params.get("symbol") else None
    return [o.to_json() for o in _account_orders(ctx, symbol_id, only_open=True)]


def cancel_open_orders(ctx: Ctx) -> Any:
    symbol = _symbol(ctx)
    orders = _account_orders(ctx, symbol.id, only_open=True)
    if not orders:
        raise errors.unknown_order_sent()
    return [
        _cancel_json(
            ctx.state.exchange.cancel(ctx.account, {"symbol": symbol.id, "orderId": str(o.order_id)}, ctx.now), {}
        )
        for o in orders
    ]


def _time_filtered(
    items: list[Any], ctx: Ctx, time_of: Callable[[Any], int], id_of: Callable[[Any], int], id_param: str
) -> list[Any]:
    start, end = _opt_time(ctx.params, "startTime"), _opt_time(ctx.params, "endTime")
    from_id = _opt_int(ctx.params, id_param)
    limit = min(max(_int(ctx.params, "limit", 500), 1), 1000)
    if from_id is not None:
        items = [i for i in items if id_of(i) >= from_id]
        return items[:limit]
    if start is not None:
        items = [i for i in items if time_of(i) >= start]
    if end is not None:
        items = [i for i in items if time_of(i) <= end]
    return items[:limit] if start is not None else items[-limit:]


def all_orders(ctx: Ctx) -> Any:
    symbol = _symbol(ctx)
    orders = sorted(_account_orders(ctx, symbol.id, only_open=False), key=lambda o: o.order_id)
    return [o.to_json() for o in _time_filtered(orders, ctx, lambda o: o.time, lambda o: o.order_id, "orderId")]


def my_trades(ctx: Ctx) -> Any:
    symbol = _symbol(ctx)
    trades = [t for t in ctx.state.exchange.trades[ctx.account] if t.symbol == symbol.id]
    order_id = _opt_int(ctx.params, "orderId")
    if order_id is not None:
        trades = [t for t in trades if t.order_id == order_id]
    return [t.to_json() for t in _time_filtered(trades, ctx, lambda t: t.time, lambda t: t.trade_id, "fromId")]


def order_rate_limit(ctx: Ctx) -> Any:
    counts = ctx.state.orders.counts(ctx.account)
    config = ctx.state.config
    return [
        {
            "rateLimitType": "ORDERS",
            "interval": "SECOND",
            "intervalNum": 10,
            "limit": config.order_limit_10s,
            "count": counts["10S"],
        },
        {
            "rateLimitType": "ORDERS",
            "interval": "DAY",
            "intervalNum": 1,
            "limit": config.order_limit_1d,
            "count": counts["1D"],
        },
    ]


def account_commission(ctx: Ctx) -> Any:
    symbol = _symbol(ctx)
    fee = ctx.state.config
    zero = fmt(Decimal(0))
    return {
        "symbol": symbol.id,
        "standardCommission": {"maker": fmt(fee.maker_fee), "taker": fmt(fee.taker_fee), "buyer": zero, "seller": zero},
        "specialCommission": {"maker": zero, "taker": zero, "buyer": zero, "seller": zero},
        "taxCommission": {"maker": zero, "taker": zero, "buyer": zero, "seller": zero},
        "discount": {
            "enabledForAccount": False,
            "enabledForSymbol": False,
            "discountAsset": "BNB",
            "discount": "0.25000000",
        },
    }


# --- sapi
def system_status(ctx: Ctx) -> Any:
    if ctx.state.faults.config.maintenance:
        return {"status": 1, "msg": "system_maintenance"}
    return {"status": 0, "msg": "normal"}


def api_restrictions(ctx: Ctx) -> Any:
    key = ctx.key
    assert key is not None  # nosec B101  # narrows a type; not an input check
    return {
        "ipRestrict": key.ip_restrict,
        "createTime": ctx.state.replay.start_ms,
        "enableReading": key.can_read,
        "enableSpotAndMarginTrading": key.can_trade,
        "enableWithdrawals": key.can_withdraw,
        "enableInternalTransfer": False,
        "enableMargin": False,
        "enableFutures": False,
        "permitsUniversalTransfer": False,
        "enableVanillaOptions": False,
        "enableFixApiTrade": False,
        "enableFixReadOnly": False,
        "enablePortfolioMarginTrading": False,
    }


def trade_fee(ctx: Ctx) -> Any:
    symbols = [_symbol(ctx)] if ctx.params.get("symbol") else list(ctx.state.market.by_id.values())
    fee = ctx.state.config
    return [
        {"symbol": s.id, "makerCommission": fmt(fee.maker_fee), "takerCommission": fmt(fee.taker_fee)} for s in symbols
    ]


def capital_config(ctx: Ctx) -> Any:
    acct = ctx.state.exchange.account(ctx.account)
    assets = sorted(
        {a for s in ctx.state.market.by_id.values() for a in (s.base_asset, s.quote_asset)} | set(acct.balances)
    )
    out = []
    for asset in assets:
        balance = acct.balances[asset]
        out.append(
            {
                "coin": asset,
                "name": asset,
                "isLegalMoney": False,
                "trading": True,
                "depositAllEnable": True,
                "withdrawAllEnable": False,
                "free": fmt(balance.free),
                "locked": fmt(balance.locked),
                "freeze": fmt(Decimal(0)),
                "withdrawing": fmt(Decimal(0)),
                "networkList": [
                    {
                        "network": asset,
                        "coin": asset,
                        "isDefault": True,
                        "depositEnable": True,
                        "withdrawEnable": False,
                        "withdrawFee": "0",
                        "withdrawMin": "0",
                        "withdrawMax": "0",
                        "withdrawIntegerMultiple": "0.00000001",
                    }
                ],
            }
        )
    return out


def empty_list(_ctx: Ctx) -> Any:
    return []


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/api/v3/ping", ping, fixed(1)),
    Endpoint("GET", "/api/v3/time", server_time, fixed(1)),
    Endpoint("GET", "/api/v3/exchangeInfo", exchange_info, fixed(20)),
    Endpoint("GET", "/api/v3/klines", klines, fixed(2)),
    Endpoint("GET", "/api/v3/uiKlines", klines, fixed(2)),
    Endpoint("GET", "/api/v3/depth", depth, depth_weight),
    Endpoint("GET", "/api/v3/ticker/price", ticker_price, by_symbols(2, 4)),
    Endpoint("GET", "/api/v3/ticker/bookTicker", book_ticker, by_symbols(2, 4)),
    Endpoint("GET", "/api/v3/ticker/24hr", ticker_24hr, by_symbols(2, 80, ((20, 2), (100, 40)))),
    Endpoint("GET", "/api/v3/avgPrice", avg_price, fixed(2)),
    Endpoint("GET", "/api/v3/account", account, fixed(20), "SIGNED"),
    Endpoint("POST", "/api/v3/order", new_order, fixed(1), "SIGNED", trade=True, new_order=True),
    Endpoint("POST", "/api/v3/order/test", test_order, fixed(1), "SIGNED", trade=True),
    Endpoint("GET", "/api/v3/order", query_order, fixed(4), "SIGNED"),
    Endpoint("DELETE", "/api/v3/order", cancel_order, fixed(1), "SIGNED", trade=True),
    Endpoint("GET", "/api/v3/openOrders", open_orders, by_symbol(6, 80), "SIGNED"),
    Endpoint("DELETE", "/api/v3/openOrders", cancel_open_orders, fixed(1), "SIGNED", trade=True),
    Endpoint("GET", "/api/v3/allOrders", all_orders, fixed(20), "SIGNED"),
    Endpoint("GET", "/api/v3/myTrades", my_trades, fixed(20), "SIGNED"),
    Endpoint("GET", "/api/v3/rateLimit/order", order_rate_limit, fixed(40), "SIGNED"),
    Endpoint("GET", "/api/v3/account/commission", account_commission, fixed(20), "SIGNED"),
    Endpoint("GET", "/sapi/v1/system/status", system_status, fixed(1)),
    Endpoint("GET", "/sapi/v1/account/apiRestrictions", api_restrictions, fixed(1), "SIGNED"),
    Endpoint("GET", "/sapi/v1/asset/tradeFee", trade_fee, fixed(1), "SIGNED"),
    Endpoint("GET", "/sapi/v1/capital/config/getall", capital_config, fixed(10), "SIGNED"),
    Endpoint("GET", "/sapi/v1/margin/allPairs", empty_list, fixed(1), "SIGNED"),
    Endpoint("GET", "/sapi/v1/margin/isolated/allPairs", empty_list, fixed(10), "SIGNED"),
    Endpoint("GET", "/fapi/v1/exchangeInfo", empty_exchange_info, fixed(1)),
    Endpoint("GET", "/dapi/v1/exchangeInfo", empty_exchange_info, fixed(1)),
]

"""Symbol filters (PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, NOTIONAL) and their checks, as Binance applies them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from traiding_simulator import errors

# Real Binance spot filters for the pairs in ../shared/data; other bases get a rule of thumb.
_KNOWN: dict[str, tuple[str, str]] = {  # base -> (tickSize, stepSize)
    "BTC": ("0.01", "0.00001"),
    "ETH": ("0.01", "0.0001"),
    "SOL": ("0.01", "0.001"),
    "BNB": ("0.01", "0.001"),
    "ADA": ("0.0001", "0.1"),
    "XRP": ("0.0001", "0.1"),
}


def _pow10(exponent: int) -> Decimal:
    return Decimal(1).scaleb(exponent)


def fmt(value: Decimal, places: int = 8) -> str:
    """Binance's fixed 8-decimal number strings."""
    return f"{value:.{places}f}"


@dataclass(frozen=True)
class SymbolRules:
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal

    @classmethod
    def for_pair(cls, base: str, reference_price: float) -> SymbolRules:
        if base in _KNOWN:
            tick, step = (Decimal(v) for v in _KNOWN[base])
        else:
            magnitude = math.floor(math.log10(reference_price)) if reference_price > 0 else 0
            tick = _pow10(max(min(magnitude - 4, -2), -8))
            step = _pow10(max(min(-magnitude - 1, 0), -8))
        max_qty = Decimal(9_000_000) if step >= 1 else Decimal(9000) if step < Decimal("0.001") else Decimal(900_000)
        return cls(
            tick_size=tick,
            min_price=tick,
            max_price=Decimal(1_000_000),
            step_size=step,
            min_qty=step,
            max_qty=max_qty,
            market_min_qty=Decimal(0),
            market_max_qty=max_qty / 10,
            min_notional=Decimal(5),
            max_notional=Decimal(9_000_000),
        )

    def exchange_info_filters(self) -> list[dict[str, Any]]:
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(self.min_price),
                "maxPrice": fmt(self.max_price),
                "tickSize": fmt(self.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(self.min_qty),
                "maxQty": fmt(self.max_qty),
                "stepSize": fmt(self.step_size),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(self.market_min_qty),
                "maxQty": fmt(self.market_max_qty),
                "stepSize": fmt(Decimal(0)),
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt(self.min_notional),
                "applyMinToMarket": True,
                "maxNotional": fmt(self.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ]

    # --- rounding helpers used to build book prices
    def price_down(self, price: float) -> Decimal:
        return (Decimal(repr(price)) / self.tick_size).to_integral_value(ROUND_FLOOR) * self.tick_size

    def price_up(self, price: float) -> Decimal:
        return (Decimal(repr(price)) / self.tick_size).to_integral_value(ROUND_CEILING) * self.tick_size

    def qty_down(self, qty: Decimal) -> Decimal:
        return (qty / self.step_size).to_integral_value(ROUND_FLOOR) * self.step_size

    # --- checks; each raises the BinanceError Binance answers with
    def check_price(self, price: Decimal) -> None:
        if price < self.min_price or price > self.max_price or (price - self.min_price) % self.tick_size != 0:
            raise errors.filter_failure("PRICE_FILTER")

    def check_lot(self, qty: Decimal, market: bool) -> None:
        if qty < self.min_qty or qty > self.max_qty or (qty - self.min_qty) % self.step_size != 0:
            raise errors.filter_failure("LOT_SIZE")
        if market and (qty < self.market_min_qty or qty > self.market_max_qty):
            raise errors.filter_failure("MARKET_LOT_SIZE")

    def check_notional(self, notional: Decimal, market: bool) -> None:
        if notional < self.min_notional:
            raise errors.filter_failure("NOTIONAL")
        if notional > self.max_notional and not market:
            raise errors.filter_failure("NOTIONAL")

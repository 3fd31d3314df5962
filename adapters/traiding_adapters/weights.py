"""Request weights: what each HTTP call ccxt makes costs against the exchange's per-minute limit.

ccxt already describes every endpoint's cost (`calculate_rate_limiter_cost`), in units where one unit is
worth `rateLimit` ms. For Binance those units are the documented weights scaled: spot `api/*` endpoints
cost 0.2 per weight (limit 6000/min), `sapi/*` 0.1 per weight. We budget in the exchange's own weights
where we know the scale (so the budget compares directly with `X-MBX-USED-WEIGHT-1M`), and in ccxt units
(limit 60000 / rateLimit per minute) for any other exchange.
"""

from __future__ import annotations

from typing import Any

BINANCE_IDS = frozenset({"binance", "binanceus"})
BINANCE_DEFAULT_WEIGHT_LIMIT = 6000.0  # REQUEST_WEIGHT per minute on api.binance.com
USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"

_BINANCE_UNIT_BY_API = {"public": 0.2, "private": 0.2, "v1": 0.2, "v3": 0.2}
_BINANCE_SAPI_UNIT = 0.1


def api_name(api: Any) -> str:
    """ccxt passes the api section either as 'public' or as ['public']."""
    if isinstance(api, list | tuple) and api:
        return str(api[0])
    return str(api)


def request_weight(client: Any, api: Any, method: str, path: str, *, params: Any, config: Any) -> float:
    """The weight of one request as the exchange counts it (see module doc)."""
    cost = float(client.calculate_rate_limiter_cost(api, method, path, params or {}, config or {}))
    if client.id in BINANCE_IDS:
        name = api_name(api)
        unit = _BINANCE_SAPI_UNIT if name.startswith("sapi") else _BINANCE_UNIT_BY_API.get(name, 0.2)
        return cost / unit
    return cost


def default_weight_limit(client: Any) -> float:
    """Weight per minute the exchange allows when it does not tell us: Binance's 6000, else ccxt's rate."""
    if client.id in BINANCE_IDS:
        return BINANCE_DEFAULT_WEIGHT_LIMIT
    rate_limit_ms = float(getattr(client, "rateLimit", 0) or 0)
    return 60_000.0 / rate_limit_ms if rate_limit_ms > 0 else 1200.0


def declared_weight_limit(exchange_info: Any) -> float | None:
    """The REQUEST_WEIGHT per minute in a Binance exchangeInfo answer, if it declares one."""
    if not isinstance(exchange_info, dict):
        return None
    for rule in exchange_info.get("rateLimits") or []:
        if not isinstance(rule, dict) or rule.get("rateLimitType") != "REQUEST_WEIGHT":
            continue
        if str(rule.get("interval", "")).upper() != "MINUTE":
            continue  # the budget is a 60 s window; other intervals do not map onto it
        try:
            limit = float(rule["limit"]) / float(rule.get("intervalNum", 1) or 1)
        except (KeyError, TypeError, ValueError):
            continue
        if limit > 0:
            return limit
    return None


def header_value(headers: Any, name: str) -> str | None:
    """A response header by case-insensitive name from ccxt's `last_response_headers`."""
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return str(value)
    return None


def used_weight(headers: Any) -> int | None:
    value = header_value(headers, USED_WEIGHT_HEADER)
    try:
        return int(value.split(",")[-1]) if value is not None else None
    except ValueError:
        return None


def retry_after_s(headers: Any) -> float | None:
    value = header_value(headers, "retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None

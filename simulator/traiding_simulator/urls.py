"""Point the real ccxt binance client at a simulator: API URLs and the options that keep it to spot."""

from __future__ import annotations

from typing import Any

# Every API section ccxt's binance class knows, with the path its real URL has. All of them are pointed
# at the simulator so that no request can leave the machine, even for sections the simulator does not serve
# (those answer 404, which ccxt raises as ExchangeNotAvailable).
_API_PATHS: dict[str, str] = {
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
    "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1",
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "papi": "/papi/v1",
    "papiV2": "/papi/v2",
}


def client_urls(base_url: str) -> dict[str, str]:
    """The mapping for `exchange.urls['api']`: every ccxt binance API section on the simulator at `base_url`."""
    base = base_url.rstrip("/")
    return {name: base + path for name, path in _API_PATHS.items()}


def ccxt_options() -> dict[str, Any]:
    """ccxt binance options that keep the client on spot endpoints the simulator serves.

    - fetchMarkets.types=['spot']: load_markets calls only /api/v3/exchangeInfo (not fapi/dapi).
    - fetchMargins=False: no /sapi/v1/margin/*allPairs calls during load_markets.
    - fetchCurrencies=False: no signed /sapi/v1/capital/config/getall during load_markets
      (the simulator serves it too, but skipping it keeps load_markets unsigned and light).
    """
    return {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchMargins": False,
        "fetchCurrencies": False,
    }


def ccxt_config(base_url: str, api_key: str | None = None, secret: str | None = None) -> dict[str, Any]:
    """A complete constructor config for `ccxt.async_support.binance(...)` talking to the simulator."""
    config: dict[str, Any] = {"options": ccxt_options(), "urls": {"api": client_urls(base_url)}}
    if api_key is not None:
        config["apiKey"] = api_key
    if secret is not None:
        config["secret"] = secret
    return config

"""Pointing ccxt at the simulator: every API section ccxt knows goes to loopback."""

from __future__ import annotations

from urllib.parse import urlparse

import ccxt

from traiding_simulator import ccxt_config, ccxt_options, client_urls


def test_client_urls_cover_every_binance_api_section_ccxt_has() -> None:
    real = ccxt.binance().urls["api"]
    ours = client_urls("http://127.0.0.1:9999/")
    assert set(real) <= set(ours), f"ccxt has sections the mapping misses: {set(real) - set(ours)}"
    for name, url in real.items():
        # same path as the real exchange, only scheme, host and port differ
        assert ours[name] == "http://127.0.0.1:9999" + urlparse(url).path


def test_spot_sections_are_where_the_simulator_serves_them() -> None:
    urls = client_urls("http://localhost:1")
    assert urls["public"] == urls["private"] == "http://localhost:1/api/v3"
    assert urls["sapi"] == "http://localhost:1/sapi/v1"


def test_ccxt_config_builds_a_client_that_stays_on_loopback() -> None:
    exchange = ccxt.binance(ccxt_config("http://127.0.0.1:8765", "key", "secret"))
    assert exchange.apiKey == "key" and exchange.secret == "secret"
    assert all(url.startswith("http://127.0.0.1:8765/") for url in exchange.urls["api"].values())
    assert exchange.options["fetchMarkets"]["types"] == ["spot"]
    assert exchange.options["fetchCurrencies"] is False and exchange.options["fetchMargins"] is False
    request = exchange.sign("klines", ["public"], "GET", {"symbol": "BTCUSDT"})
    assert request["url"] == "http://127.0.0.1:8765/api/v3/klines?symbol=BTCUSDT"


def test_options_are_a_fresh_dict_each_time() -> None:
    first = ccxt_options()
    first["fetchMarkets"]["types"].append("linear")
    assert ccxt_options()["fetchMarkets"]["types"] == ["spot"]

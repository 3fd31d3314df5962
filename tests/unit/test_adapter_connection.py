"""The shared connection with a fake ccxt exchange object: every ccxt request books weight, honours the
exchange's weight header and Retry-After, learns the declared limit, maps errors and feeds the breaker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt.async_support as ccxt
import pytest

from traiding_adapters.connection import Connection, Credentials, ExchangeSettings
from traiding_adapters.errors import (
    AuthenticationFailed,
    CircuitOpen,
    ClockSkewError,
    ExchangeLayerError,
    ExchangeUnavailable,
)
from traiding_adapters.hub import default_hub
from traiding_adapters.ratelimit import WeightBudget
from traiding_adapters.retry import RetryPolicy


class FakeBinance:
    """The parts of a ccxt binance instance the connection touches; `script` decides each response."""

    id = "binance"
    rateLimit = 50

    def __init__(self) -> None:
        self.has = {"fetchTime": True}
        self.options: dict[str, Any] = {"timeDifference": 0}
        self.last_response_headers: dict[str, str] | None = None
        self.requests: list[str] = []
        self.script: list[tuple[Any, dict[str, str]]] = []  # (result or exception, headers)
        self.server_offset_ms = 0

    def calculate_rate_limiter_cost(self, api: Any, method: str, path: str, params: Any, config: Any) -> float:
        return float(config.get("cost", 1))

    async def fetch2(
        self, path: str, api: Any = "public", method: str = "GET", params: Any = None, config: Any = None
    ) -> Any:
        self.requests.append(path)
        result, headers = self.script.pop(0) if self.script else ({}, {})
        self.last_response_headers = headers
        if isinstance(result, Exception):
            raise result
        return result

    async def public_get(self, path: str, cost: float) -> Any:
        return await self.fetch2(path, "public", "GET", {}, {"cost": cost})

    async def fetch_time(self) -> int:
        await self.fetch2("time", "public", "GET", {}, {"cost": 0.2})
        return int(time.time() * 1000) + self.server_offset_ms

    async def close(self) -> None:
        return None


SETTINGS = ExchangeSettings(
    retry=RetryPolicy(attempts=3, initial_wait_s=0, jitter_s=0, max_total_s=5), failure_threshold=3, clock_samples=1
)


def connection(
    client: FakeBinance, limit: float = 6000, learn: bool = True, credentials: Credentials | None = None
) -> Connection:
    budget = WeightBudget(limit, safety=1.0)
    credentials = credentials or Credentials("key", "the-secret-value", source="Secret binance-keys")
    return Connection("binance", client, budget, SETTINGS, credentials, learn_limit=learn)


async def test_every_request_books_its_binance_weight() -> None:
    client = FakeBinance()
    conn = connection(client)
    await conn.call(lambda: client.public_get("exchangeInfo", 4))  # ccxt cost 4 = weight 20
    await conn.call(lambda: client.public_get("klines", 0.4))  # weight 2
    assert conn.budget.stats().total_weight == pytest.approx(22)
    assert conn.budget.stats().requests == 2


async def test_the_exchanges_weight_header_raises_our_count() -> None:
    client = FakeBinance()
    client.script = [({}, {"X-MBX-USED-WEIGHT-1M": "900"})]
    conn = connection(client)
    await conn.call(lambda: client.public_get("ticker/24hr", 0.4))
    assert conn.budget.used() == pytest.approx(900)
    assert conn.budget.stats().header_used == 900


async def test_declared_limit_is_learnt_from_exchange_info() -> None:
    client = FakeBinance()
    rate_limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}]
    client.script = [({"rateLimits": rate_limits}, {})]
    conn = connection(client)
    await conn.call(lambda: client.public_get("exchangeInfo", 4))
    assert conn.budget.limit == 1200


async def test_configured_limit_wins_over_the_declared_one() -> None:
    client = FakeBinance()
    rate_limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}]
    client.script = [({"rateLimits": rate_limits}, {})]
    conn = connection(client, limit=300, learn=False)
    await conn.call(lambda: client.public_get("exchangeInfo", 4))
    assert conn.budget.limit == 300


async def test_429_pauses_the_whole_budget_for_retry_after() -> None:
    client = FakeBinance()
    client.script = [(ccxt.DDoSProtection("binance 429 Too Many Requests"), {"Retry-After": "120"})]
    conn = connection(client)
    with pytest.raises(ExchangeUnavailable, match="rate limit"):
        await conn.call(lambda: client.public_get("ticker/24hr", 0.4), retry=False)
    paused = conn.budget.stats().paused_until
    assert paused is not None
    assert conn.circuit.consecutive_failures == 0, "a 429 says the exchange is up: not a breaker failure"


async def test_transient_failures_are_retried_and_open_the_circuit() -> None:
    client = FakeBinance()
    client.script = [(ccxt.ExchangeNotAvailable("binance 503"), {}) for _ in range(10)]
    conn = connection(client)
    with pytest.raises(ExchangeUnavailable, match="503"):
        await conn.call(lambda: client.public_get("ticker/24hr", 0.4))
    assert len(client.requests) == 3
    assert conn.circuit.state == "open"
    with pytest.raises(CircuitOpen, match="503"):
        await conn.call(lambda: client.public_get("ticker/24hr", 0.4))
    assert len(client.requests) == 3, "nothing is sent while the circuit is open"


async def test_authentication_errors_are_not_retried_and_hide_the_secret() -> None:
    client = FakeBinance()
    client.script = [(ccxt.AuthenticationError("binance bad signature for the-secret-value"), {})]
    conn = connection(client)
    with pytest.raises(AuthenticationFailed) as info:
        await conn.call(lambda: client.public_get("account", 4))
    assert len(client.requests) == 1
    assert "the-secret-value" not in str(info.value)
    assert "Secret binance-keys" in str(info.value)
    assert conn.circuit.state == "closed"


async def test_an_exchange_message_echoing_the_api_key_reaches_nobody_with_it() -> None:
    # Events and the run's status carry exchange messages; neither passes through the log redaction.
    client = FakeBinance()
    client.script = [(ccxt.InvalidOrder("binance rejected order for key key-1234567 (the-secret-value)"), {})]
    conn = connection(client, credentials=Credentials("key-1234567", "the-secret-value", source="Secret keys"))
    with pytest.raises(ExchangeLayerError) as info:
        await conn.call(lambda: client.public_get("order", 1))
    assert "key-1234567" not in str(info.value)
    assert "the-secret-value" not in str(info.value)


async def test_minus_1021_re_measures_the_clock_once_then_succeeds() -> None:
    client = FakeBinance()
    client.server_offset_ms = -20_000
    conn = connection(client)
    await conn.sync_clock()
    assert client.options["timeDifference"] == pytest.approx(20_000, abs=200)
    client.server_offset_ms = 40_000
    client.script = [(ccxt.InvalidNonce('binance {"code":-1021}'), {})]
    result = await conn.call(lambda: client.public_get("account", 4), signed=True)
    assert result == {}
    assert client.options["timeDifference"] == pytest.approx(-40_000, abs=200)


async def test_persistent_minus_1021_is_a_clock_skew_error() -> None:
    client = FakeBinance()
    conn = connection(client)
    await conn.sync_clock()
    client.script = [
        (ccxt.InvalidNonce('binance {"code":-1021}'), {}),
        ({}, {}),  # the re-measurement's fetch_time
        (ccxt.InvalidNonce('binance {"code":-1021}'), {}),
    ]
    with pytest.raises(ClockSkewError, match="NTP"):
        await conn.call(lambda: client.public_get("account", 4), signed=True)


async def test_concurrent_signed_calls_measure_the_clock_once() -> None:
    client = FakeBinance()
    conn = connection(client)
    await asyncio.gather(*(conn.call(lambda: client.public_get("account", 4), signed=True) for _ in range(10)))
    assert client.requests.count("time") == 1


async def test_default_hub_is_one_per_event_loop() -> None:
    assert default_hub() is default_hub()
    other = await asyncio.to_thread(lambda: asyncio.run(_hub_of_a_new_loop()))
    assert other is not default_hub()


async def _hub_of_a_new_loop() -> object:
    return default_hub()


async def test_neither_the_key_nor_the_secret_shows_in_an_error_or_a_repr() -> None:
    client = FakeBinance()
    credentials = Credentials("the-api-key-value", "the-secret-value", password="the-passphrase")
    conn = Connection("binance", client, WeightBudget(6000, safety=1.0), SETTINGS, credentials, learn_limit=False)
    client.script = [(ccxt.AuthenticationError("binance API-key the-api-key-value rejected (the-secret-value)"), {})]
    with pytest.raises(AuthenticationFailed) as info:
        await conn.call(lambda: client.public_get("account", 1), retry=False)
    for value in ("the-api-key-value", "the-secret-value"):
        assert value not in str(info.value)
    assert "the-api-key-value" not in repr(credentials) and "the-passphrase" not in repr(credentials)

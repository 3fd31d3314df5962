"""One exchange connection shared by every run using the same exchange and key: the ccxt instance (its
HTTP session), its weight budget, its circuit breaker and its clock correction.

`Connection.call` is the one path every adapter call takes:
circuit check -> [retries on transient errors] -> ccxt (whose every HTTP request books weight in the shared
budget first) -> our exception on failure. A -1021 (clock skew) re-measures the clock once and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ccxt.async_support as ccxt

from traiding_adapters.circuit import CircuitBreaker
from traiding_adapters.clock import ClockOffset, ccxt_time_difference, measure_offset
from traiding_adapters.errors import (
    CircuitOpen,
    ClockSkewError,
    ExchangeLayerError,
    ExchangeMaintenance,
    ExchangeUnavailable,
    RateLimited,
    UnknownExchange,
    map_ccxt_error,
)
from traiding_adapters.exchange import Market
from traiding_adapters.observer import NULL_OBSERVER, ExchangeObserver, endpoint_class, request_outcome
from traiding_adapters.ratelimit import WeightBudget
from traiding_adapters.retry import RetryPolicy, call_with_retries
from traiding_adapters.weights import (
    BINANCE_IDS,
    api_name,
    declared_weight_limit,
    request_weight,
    retry_after_s,
    used_weight,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_RETRY_AFTER_S = 10.0  # a 429 without Retry-After: wait this long before anyone sends again


@dataclass(frozen=True)
class Credentials:
    """An API key pair. `source` names where it came from in messages ("Secret binance-keys"); the repr shows
    only that (no key material in any log line, traceback or debugger)."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    source: str = "the configured credentials"


@dataclass(frozen=True)
class ExchangeSettings:
    """Tuning of one exchange connection; the defaults suit a real exchange."""

    timeout_ms: int = 10_000  # one HTTP request
    weight_limit: float | None = None  # per minute; None: what the exchange declares, else its default
    budget_safety: float = 0.9  # fraction of the limit we allow ourselves
    weight_window_s: float = 60.0  # the exchange's counting window (Binance: one minute)
    max_pause_wait_s: float = 30.0  # a longer Retry-After (a ban) fails calls with RateLimited instead
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    order_lookup: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=6, max_total_s=30.0))
    # 1: an order the exchange says does not exist after a lost answer is NOT sent again in the same call.
    # Binance rejects a reused client order id only while that order is open, so a delayed first copy that
    # fills and a resend could both execute; the caller looks the id up again later instead.
    order_max_sends: int = 1
    order_settle_s: float = 0.2
    failure_threshold: int = 5
    cool_down_s: float = 15.0
    clock_samples: int = 3
    ohlcv_page_limit: int | None = None  # None: 1000 on Binance, 500 elsewhere
    # Tickers and recent candles are shared by every run on the market: an answer younger than this is reused
    # (0: every call fetches). See shared_reads.py.
    market_data_max_age_s: float = 0.1
    recent_candles_kept: int = 5000  # per market, in memory
    ccxt_options: Mapping[str, Any] = field(default_factory=dict)


def make_ccxt_client(
    exchange_id: str,
    credentials: Credentials | None,
    urls: Mapping[str, str] | None,
    settings: ExchangeSettings,
) -> Any:
    """A ccxt async client configured for our use: spot only, our own rate limiting, given base URLs."""
    try:
        client_class = getattr(ccxt, exchange_id)
    except AttributeError:
        raise UnknownExchange(
            f"unknown exchange id {exchange_id!r}: use a ccxt exchange id such as 'binance', 'kraken', 'okx'"
        ) from None
    config: dict[str, Any] = {
        "enableRateLimit": False,  # the shared WeightBudget throttles instead (one budget per key)
        "timeout": settings.timeout_ms,
        "options": {"defaultType": "spot"},
    }
    if exchange_id in BINANCE_IDS:
        config["options"].update(
            {
                "fetchMarkets": {"types": ["spot"]},  # we trade spot; skips futures exchangeInfo calls
                "fetchCurrencies": False,  # a heavy signed call we do not need
                "fetchMargins": False,
                "adjustForTimeDifference": False,  # we measure and set timeDifference ourselves
            }
        )
    config["options"].update(dict(settings.ccxt_options))
    if credentials is not None:
        config["apiKey"] = credentials.api_key
        config["secret"] = credentials.secret
        if credentials.password:
            config["password"] = credentials.password
    client = client_class(config)
    if urls:
        api_urls = client.urls.get("api")
        client.urls["api"] = dict(urls) if isinstance(api_urls, dict) else next(iter(urls.values()))
    return client


class Connection:
    """See module doc. Created and reference-counted by `ExchangeHub`."""

    def __init__(
        self,
        exchange_id: str,
        client: Any,
        budget: WeightBudget,
        settings: ExchangeSettings,
        credentials: Credentials | None,
        *,
        learn_limit: bool,
        observer: ExchangeObserver = NULL_OBSERVER,
    ) -> None:
        self.exchange_id = exchange_id
        self.observer = observer
        self.client = client
        self.budget = budget
        self.settings = settings
        self.credentials = credentials
        self.circuit = CircuitBreaker(
            exchange_id, failure_threshold=settings.failure_threshold, cool_down_s=settings.cool_down_s
        )
        self.clock_offset: ClockOffset | None = None
        self.markets_lock = asyncio.Lock()
        self.markets: dict[str, Market] | None = None
        self.references = 0
        self._learn_limit = learn_limit
        self._clock_lock = asyncio.Lock()
        self._install_budget()

    # -- the budget hook -------------------------------------------------------------------------------

    def _install_budget(self) -> None:
        """Route every HTTP request ccxt makes (including internal ones) through the shared budget."""
        client = self.client
        original_fetch2 = client.fetch2

        async def fetch2(
            path: str, api: Any = "public", method: str = "GET", params: Any = None, config: Any = None
        ) -> Any:
            params = {} if params is None else params
            config = {} if config is None else config
            weight = request_weight(client, api, method, path, params=params, config=config)
            booking = await self.budget.acquire(weight)
            # a request that fails without an answer must not re-read an old answer's weight header
            client.last_response_headers = None
            failure: BaseException | None = None
            started = time.perf_counter()
            try:
                response = await original_fetch2(path, api, method, params, config)
            except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as error:
                failure = error
                pause = retry_after_s(client.last_response_headers) or DEFAULT_RETRY_AFTER_S
                log.warning("%s answered 429/418: pausing the shared budget for %.1f s", self.exchange_id, pause)
                self.budget.pause_for(pause)
                raise
            except BaseException as error:
                failure = error
                raise
            finally:
                if not isinstance(failure, asyncio.CancelledError):  # a cancelled request says nothing of the exchange
                    seconds = time.perf_counter() - started
                    self.observer.exchange_request(
                        self.exchange_id, endpoint_class(path), request_outcome(failure), seconds
                    )
                self.budget.release(booking)
                used = used_weight(client.last_response_headers)
                if used is not None:
                    self.budget.observe_used_weight(used)
            if self._learn_limit and path == "exchangeInfo" and api_name(api) == "public":
                limit = declared_weight_limit(response)
                if limit is not None and limit != self.budget.limit:
                    log.info("%s declares %s weight per minute", self.exchange_id, limit)
                    self.budget.set_limit(limit)
            return response

        client.fetch2 = fetch2

    # -- calls -----------------------------------------------------------------------------------------

    def map_error(self, error: BaseException) -> ExchangeLayerError:
        secrets: tuple[str, ...] = ()
        hint = "the configured credentials"
        if self.credentials is not None:
            # The key too: exchange messages reach Events and the run's status, which no log redaction sees.
            credentials = self.credentials
            secrets = tuple(s for s in (credentials.api_key, credentials.secret, credentials.password) if s)
            hint = self.credentials.source
        mapped = map_ccxt_error(
            error,
            exchange_id=self.exchange_id,
            credentials_hint=hint,
            secrets=secrets,
            clock_offset_ms=self.clock_offset.offset_ms if self.clock_offset else None,
        )
        if isinstance(mapped, RateLimited) and mapped.retry_after_s is None:
            mapped.retry_after_s = retry_after_s(self.client.last_response_headers)
        if type(mapped) is ExchangeUnavailable and "maintenance" in str(mapped).lower():
            mapped = ExchangeMaintenance(str(mapped))
        return mapped

    async def attempt(self, operation: Callable[[], Awaitable[T]]) -> T:
        """One try of `operation` through the circuit breaker, failures mapped to our exceptions."""
        try:
            self.circuit.before_call()
        except CircuitOpen:
            self.observer.exchange_error(self.exchange_id, CircuitOpen.__name__)
            raise
        try:
            result = await operation()
        except asyncio.CancelledError:
            self.circuit.record_neutral()
            raise
        except Exception as error:
            mapped = self.map_error(error)
            self.observer.exchange_error(self.exchange_id, type(mapped).__name__)
            if isinstance(mapped, RateLimited):
                self.circuit.record_neutral()  # the exchange is up, we were too fast
            elif isinstance(mapped, ClockSkewError):
                self.circuit.record_success()  # it answered (our clock was off): reachable
            elif mapped.transient:
                self.circuit.record_failure(mapped)
            else:
                self.circuit.record_success()  # it answered: reachable
            if mapped is error:
                raise
            raise mapped from error
        self.circuit.record_success()
        return result

    async def call(self, operation: Callable[[], Awaitable[T]], *, retry: bool = True, signed: bool = False) -> T:
        """`operation` with retries on transient errors; signed calls get one clock re-sync on -1021."""
        if signed and self.clock_offset is None and self.client.has.get("fetchTime"):
            await self.sync_clock(only_if_unknown=True)

        async def once() -> T:
            try:
                return await self.attempt(operation)
            except ClockSkewError:
                if not signed or not self.client.has.get("fetchTime"):
                    raise
                log.warning("%s rejected a request timestamp; re-measuring the clock", self.exchange_id)
                await self.sync_clock()
                return await self.attempt(operation)

        if not retry:
            return await once()
        return await call_with_retries(once, self.settings.retry)

    async def sync_clock(self, *, retry: bool = True, only_if_unknown: bool = False) -> ClockOffset:
        """Measure the exchange's clock offset and make ccxt sign with the exchange's time.

        `only_if_unknown`: runs that queued up behind a measurement reuse it instead of repeating it.
        """
        async with self._clock_lock:
            if only_if_unknown and self.clock_offset is not None:
                return self.clock_offset

            def measure() -> Awaitable[ClockOffset]:
                return self.attempt(lambda: measure_offset(self._fetch_time, samples=self.settings.clock_samples))

            offset = await (call_with_retries(measure, self.settings.retry) if retry else measure())
            self.apply_clock_offset(offset)
            return offset

    def apply_clock_offset(self, offset: ClockOffset) -> None:
        self.clock_offset = offset
        self.client.options["timeDifference"] = ccxt_time_difference(offset.offset_ms)

    async def _fetch_time(self) -> int:
        value = await self.client.fetch_time()
        if value is None:
            raise ExchangeUnavailable(f"{self.exchange_id} returned no server time")
        return int(value)

    async def close(self) -> None:
        await self.client.close()

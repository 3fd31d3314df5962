"""ExchangeHub: one ccxt instance (HTTP session) per exchange and key in the process, one weight budget per
exchange and key, and one view of each market's public data (tickers, recent candles) per exchange endpoint,
all shared by every run.

`hub.get(...)` hands out a `CcxtExchange`; each handle's `close()` gives its reference back, and the last one
closes the ccxt session. Connections are keyed by (exchange id, base URLs, api key, a hash of the secret):
a run with a different secret for the same key gets its own session (so a wrong secret cannot poison a good
one) but the same budget, because the exchange counts weight per key and address, not per secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from traiding_adapters.ccxt_exchange import CcxtExchange
from traiding_adapters.connection import Connection, Credentials, ExchangeSettings, make_ccxt_client
from traiding_adapters.observer import NULL_OBSERVER, ExchangeObserver
from traiding_adapters.ratelimit import BudgetStats, WeightBudget
from traiding_adapters.shared_reads import SharedReads
from traiding_adapters.weights import default_weight_limit

_BudgetKey = tuple[str, str, tuple[tuple[str, str], ...]]
_ConnectionKey = tuple[_BudgetKey, str]


@dataclass(frozen=True)
class ExchangeState:
    """One exchange's connections and budgets now (for metrics): no key appears here."""

    exchange_id: str
    circuits: Mapping[str, int]  # circuit state -> open connections in it
    budget_used_ratio: float  # the fullest budget of the exchange: weight used / weight we allow ourselves
    budget_waits: int  # requests that waited for a budget, since it was created


class ExchangeHub:
    """The process-wide registry of exchange connections (see module doc)."""

    def __init__(self, settings: ExchangeSettings | None = None, observer: ExchangeObserver | None = None) -> None:
        self.settings = settings or ExchangeSettings()
        self.observer = observer or NULL_OBSERVER
        self._connections: dict[_ConnectionKey, Connection] = {}
        self._budgets: dict[_BudgetKey, WeightBudget] = {}
        self._shared: dict[tuple[str, tuple[tuple[str, str], ...]], SharedReads] = {}  # public data per endpoint
        self._lock = asyncio.Lock()

    def get(
        self,
        exchange_id: str,
        credentials: Credentials | None = None,
        urls: Mapping[str, str] | None = None,
        settings: ExchangeSettings | None = None,
    ) -> CcxtExchange:
        """A handle on the shared connection for this exchange and key; `close()` it when done.

        `urls` replaces ccxt's `urls['api']` (e.g. `traiding_simulator.client_urls(base_url)`); `settings`
        only applies when this call creates the connection.
        """
        budget_key: _BudgetKey = (
            exchange_id,
            credentials.api_key if credentials else "",
            tuple(sorted((urls or {}).items())),
        )
        secret_hash = hashlib.sha256(credentials.secret.encode()).hexdigest() if credentials else ""
        key: _ConnectionKey = (budget_key, secret_hash)
        connection = self._connections.get(key)
        if connection is None:
            chosen = settings or self.settings
            client = make_ccxt_client(exchange_id, credentials, urls, chosen)
            budget = self._budgets.get(budget_key)
            if budget is None:
                limit = chosen.weight_limit or default_weight_limit(client)
                budget = WeightBudget(
                    limit,
                    safety=chosen.budget_safety,
                    window_s=chosen.weight_window_s,
                    max_pause_wait_s=chosen.max_pause_wait_s,
                )
                self._budgets[budget_key] = budget
            connection = Connection(
                exchange_id,
                client,
                budget,
                chosen,
                credentials,
                learn_limit=chosen.weight_limit is None,
                observer=self.observer,
            )
            self._connections[key] = connection
        connection.references += 1
        endpoint = (exchange_id, budget_key[2])
        shared = self._shared.get(endpoint)
        if shared is None:
            shared = self._shared[endpoint] = SharedReads(keep_candles=connection.settings.recent_candles_kept)
        return CcxtExchange(connection, release=lambda: self._release(key), shared=shared)

    def budget_stats(self) -> dict[str, BudgetStats]:
        """Each budget's usage, keyed 'exchange_id:api_key-prefix'."""
        return {f"{key[0]}:{key[1][:6]}": budget.stats() for key, budget in self._budgets.items()}

    def exchange_states(self) -> list[ExchangeState]:
        """Per exchange id: circuit states of the open connections and the use of its budgets."""
        circuits: dict[str, Counter[str]] = {}
        for connection in list(self._connections.values()):
            circuits.setdefault(connection.exchange_id, Counter())[connection.circuit.state] += 1
        used: dict[str, float] = {}
        waits: dict[str, int] = {}
        for (exchange_id, _key, _urls), budget in list(self._budgets.items()):
            stats = budget.stats()
            used[exchange_id] = max(used.get(exchange_id, 0.0), stats.used / stats.capacity if stats.capacity else 0.0)
            waits[exchange_id] = waits.get(exchange_id, 0) + stats.waits
        return [
            ExchangeState(
                exchange_id, dict(circuits.get(exchange_id, {})), used.get(exchange_id, 0.0), waits.get(exchange_id, 0)
            )
            for exchange_id in sorted(set(circuits) | set(used))
        ]

    def open_connections(self) -> int:
        return len(self._connections)

    async def _release(self, key: _ConnectionKey) -> None:
        async with self._lock:
            connection = self._connections.get(key)
            if connection is None:
                return
            connection.references -= 1
            if connection.references <= 0:
                del self._connections[key]
                await connection.close()

    async def close(self) -> None:
        """Close every connection (process shutdown)."""
        async with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for connection in connections:
            await connection.close()


_default_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ExchangeHub] = weakref.WeakKeyDictionary()


def default_hub() -> ExchangeHub:
    """The hub of the running event loop, created on first use.

    One per loop, not per process: ccxt's HTTP sessions belong to the loop they were opened on (tests and
    `asyncio.run` calls get a fresh loop each).
    """
    loop = asyncio.get_running_loop()
    hub = _default_hubs.get(loop)
    if hub is None:
        hub = _default_hubs[loop] = ExchangeHub()
    return hub

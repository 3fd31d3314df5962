"""Everything one running simulator holds, in one object the routes and the control API share."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from traiding_simulator.auth import KeyStore
from traiding_simulator.clock import ExchangeClock, ReplayClock, wall_ms
from traiding_simulator.config import SimulatorConfig
from traiding_simulator.engine import Exchange
from traiding_simulator.faults import Faults
from traiding_simulator.loading import build_market
from traiding_simulator.ratelimit import OrderCounter, WeightLimiter

T = TypeVar("T")


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests_total = 0
        self.requests_by_endpoint: dict[str, int] = defaultdict(int)
        self.responses_by_status: dict[int, int] = defaultdict(int)
        self.errors_by_code: dict[int, int] = defaultdict(int)

    def count_request(self, endpoint: str) -> None:
        self.requests_total += 1
        self.requests_by_endpoint[endpoint] += 1

    def count_response(self, status: int, code: int | None) -> None:
        self.responses_by_status[status] += 1
        if code is not None:
            self.errors_by_code[code] += 1


class SimState:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        replay = build_market(config, wall_now_ms=wall_ms())
        self.market = replay.market
        self.shift_ms = replay.shift_ms  # candle times = the data's times + shift_ms (whole days)
        self.replay = ReplayClock(replay.start_ms, config.speed)
        self.exchange_clock = ExchangeClock(config.time_offset_ms)
        self.exchange = Exchange(config, self.market, on_first_fill=self._first_fill)
        self.keys = KeyStore(config.keys)
        self.limiter = WeightLimiter(
            config.weight_limit, config.weight_window_ms, config.ban_after_rejections, config.ban_ms
        )
        self.sapi_limiter = WeightLimiter(
            config.sapi_weight_limit, config.weight_window_ms, config.ban_after_rejections, config.ban_ms
        )
        self.orders = OrderCounter(
            config.order_limit_10s, config.order_limit_1d, credit_fills=config.order_counting == "unfilled"
        )
        # first fills of the order being placed: credited after it is counted, as Binance does
        self._placing: list[tuple[str, int]] | None = None
        self.faults = Faults(config.faults, config.seed)
        self.stats = Stats()
        self.stopping = asyncio.Event()

    def _first_fill(self, account: str, orders: int) -> None:
        if self._placing is not None:
            self._placing.append((account, orders))
        else:
            self.orders.credit(account, orders)

    def place_counted(self, account: str, place: Callable[[], T]) -> tuple[T, dict[str, int]]:
        """Run `place` (a new order) under the unfilled order count: refused at the limit (-1015); counted when
        accepted ('all': counted either way), then credited with the order's own first fill; returns the counts
        its answer reports."""
        self.orders.check(account)
        if self.config.order_counting == "all":
            counts = self.orders.add(account)
            return place(), counts
        self._placing = []
        try:
            result = place()
            credits = self._placing
        finally:
            self._placing = None
        counts = self.orders.add(account)
        for credited, orders in credits:
            self.orders.credit(credited, orders)
        return result, counts

    def reset(self) -> None:
        """Back to the start: balances, orders, stats, limits, faults, keys and the replay clock."""
        self.exchange.reset()
        self.keys = KeyStore(self.config.keys)
        self.limiter.reset()
        self.sapi_limiter.reset()
        self.orders.reset()
        self.faults.clear()
        self.faults.configure(self.config.faults)
        self.faults.injected.clear()
        self.stats.reset()
        self.replay.set_speed(self.config.speed)
        self.replay.reset()
        self.exchange_clock.offset_ms = self.config.time_offset_ms

    async def hang(self, seconds: float) -> bool:
        """Wait `seconds` or until the simulator stops; True when the simulator is stopping."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    def clock_view(self) -> dict[str, Any]:
        return {
            "replay_time": self.replay.now_ms(),
            "replay_start": self.replay.start_ms,
            "speed": self.replay.speed,
            "server_time": self.exchange_clock.now_ms(),
            "time_offset_ms": self.exchange_clock.offset_ms,
            "data_start": self.market.first_ms,
            "data_end": self.market.end_ms,
            "shift_ms": self.shift_ms,
            "data_ended": self.replay.now_ms() >= self.market.end_ms,
        }

    def orders_view(self, account: str) -> list[dict[str, Any]]:
        """Every order of `account` as the exchange holds it, with its fills' commission per asset (matched up to
        the replay's now first, as any exchange request would be)."""
        self.exchange.match(self.replay.now_ms())
        out = []
        for order in sorted(self.exchange.orders.values(), key=lambda o: o.order_id):
            if order.account != account:
                continue
            commission: dict[str, str] = {}
            for fill in order.fills:
                total = Decimal(commission.get(fill.commission_asset, "0")) + fill.commission
                commission[fill.commission_asset] = str(total)
            out.append({**order.to_json(), "commission": commission})
        return out

    def stats_view(self) -> dict[str, Any]:
        ex = self.exchange
        return {
            "requests_total": self.stats.requests_total,
            "requests_by_endpoint": dict(self.stats.requests_by_endpoint),
            "responses_by_status": {str(k): v for k, v in self.stats.responses_by_status.items()},
            "errors_by_code": {str(k): v for k, v in self.stats.errors_by_code.items()},
            "orders_by_client_order_id": dict(ex.orders_by_client_id),
            "order_attempts_by_client_order_id": dict(ex.order_attempts_by_client_id),
            "orders_total": len(ex.orders),
            "open_orders": len(ex.open_orders) + len(ex.stop_orders),
            "trades_total": sum(len(t) for t in ex.trades.values()),
            "weight_used": self.limiter.used_by_ip(),
            "weight_used_now": max(self.limiter.used_by_ip().values(), default=0),
            "weight_limit": self.limiter.limit,
            "sapi_weight_used": self.sapi_limiter.used_by_ip(),
            "served_429": self.limiter.served_429 + self.sapi_limiter.served_429,
            "served_418": self.limiter.served_418 + self.sapi_limiter.served_418,
            "faults_injected": dict(self.faults.injected),
            "pending_fault_rules": [r.model_dump() for r in self.faults.rules],
            "maintenance": self.faults.config.maintenance,
            "clock": self.clock_view(),
        }

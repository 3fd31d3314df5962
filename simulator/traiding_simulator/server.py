"""The aiohttp application: per-request pipeline (stats, faults, weight, maintenance, auth, matching),
the /_sim control API, and ways to run it (async context manager, background thread, blocking)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web
from pydantic import BaseModel, ValidationError

from traiding_simulator import errors
from traiding_simulator.config import ApiKeyConfig, FaultConfig, FaultRule, SimulatorConfig
from traiding_simulator.routes import ENDPOINTS, Ctx, Endpoint, RawJson
from traiding_simulator.state import SimState

log = logging.getLogger("traiding_simulator")
STATE_KEY: web.AppKey[SimState] = web.AppKey("state", SimState)
T = TypeVar("T")


def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = data.text if isinstance(data, RawJson) else json.dumps(data, separators=(",", ":"), default=str)
    return web.Response(text=text, status=status, content_type="application/json", headers=headers)


def _error_response(exc: errors.BinanceError) -> web.Response:
    return _json_response({"code": exc.code, "msg": exc.msg}, exc.status, exc.headers)


def _params(raw_query: str, raw_body: str) -> dict[str, str]:
    """The request's parameters; one sent in both the query string and the body takes the query's value, as on
    Binance."""
    params = dict(parse_qsl(raw_body, keep_blank_values=True)) if raw_body else {}
    params.update(parse_qsl(raw_query, keep_blank_values=True))
    return params


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees a disconnect)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


def _plain_error(status: int) -> web.Response:
    reasons = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    return web.Response(status=status, text=reasons.get(status, "Server Error"), content_type="text/plain")


async def _handle(request: web.Request, endpoint: Endpoint) -> web.Response:
    state = request.app[STATE_KEY]
    started = time.perf_counter()
    state.stats.count_request(endpoint.name)
    ip = request.remote or "unknown"
    headers: dict[str, str] = {}
    limiter = state.sapi_limiter if endpoint.bucket == "sapi" else state.limiter
    response: web.Response
    code: int | None = None
    try:
        fault = state.faults.roll(request.path)
        if fault.latency_s > 0:
            await state.hang(fault.latency_s)
        raw_query = request.rel_url.raw_query_string
        raw_body = (await request.text()) if request.can_read_body else ""
        params = _params(raw_query, raw_body)
        try:
            limiter.charge(ip, endpoint.weight(params))
        finally:
            used = str(limiter.used(ip))
            if endpoint.bucket == "sapi":
                headers["X-SAPI-USED-IP-WEIGHT-1M"] = used
            else:
                headers["X-MBX-USED-WEIGHT-1M"] = used
                headers["X-MBX-USED-WEIGHT"] = used
        if state.faults.config.maintenance and endpoint.path != "/sapi/v1/system/status":
            raise errors.maintenance()
        if fault.error_status is not None:
            response = _plain_error(fault.error_status)
        elif fault.hang_s is not None:
            await state.hang(fault.hang_s)
            response = _plain_error(504)
        else:
            response = await _handle_exchange(
                request, endpoint, state, params=params, raw_query=raw_query, raw_body=raw_body, headers=headers
            )
    except errors.BinanceError as exc:
        code = exc.code
        response = _error_response(exc)
    for name, value in headers.items():
        response.headers[name] = value
    state.stats.count_response(response.status, code)
    if state.config.log_requests:
        log.info(
            "%s %s -> %s (%s, weight %s, %.1f ms)",
            request.method,
            request.path,
            response.status,
            code if code is not None else "ok",
            headers.get("X-MBX-USED-WEIGHT-1M", headers.get("X-SAPI-USED-IP-WEIGHT-1M")),
            (time.perf_counter() - started) * 1000,
        )
    return response


async def _handle_exchange(
    request: web.Request,
    endpoint: Endpoint,
    state: SimState,
    *,
    params: dict[str, str],
    raw_query: str,
    raw_body: str,
    headers: dict[str, str],
) -> web.Response:
    rule = state.faults.take_rule(request.method, request.path)
    if rule is not None and rule.action.endswith("_before"):
        if rule.action == "drop_before":
            return _drop(request)
        if rule.action == "hang_before":
            await state.hang(rule.hang_ms / 1000.0)
        return _plain_error(rule.status if rule.action == "error_before" else 504)
    key = None
    server_time = state.exchange_clock.now_ms()
    if endpoint.security == "SIGNED":
        key = state.keys.verify(
            request.headers.get("X-MBX-APIKEY"),
            raw_query=raw_query,
            raw_body=raw_body,
            params=params,
            server_time_ms=server_time,
            max_recv_window_ms=state.config.max_recv_window_ms,
            default_recv_window_ms=state.config.default_recv_window_ms,
        )
    elif endpoint.security == "API_KEY":
        key = state.keys.api_key(request.headers.get("X-MBX-APIKEY"))
    if endpoint.trade and key is not None and not key.can_trade:
        raise errors.trading_disabled_for_key()
    now = state.replay.now_ms()
    state.exchange.match(now)
    ctx = Ctx(state, params, key, now, server_time)
    if endpoint.new_order and key is not None:
        # only an accepted order is counted and carries the counts (Binance's unfilled order count)
        result, counts = state.place_counted(key.account, lambda: endpoint.handler(ctx))
        headers["X-MBX-ORDER-COUNT-10S"] = str(counts["10S"])
        headers["X-MBX-ORDER-COUNT-1D"] = str(counts["1D"])
    else:
        result = endpoint.handler(ctx)
    response = _json_response(result)
    if rule is not None:  # an *_after rule: the request took effect, the client does not learn it
        if rule.action == "drop_after":
            return _drop(request)
        if rule.action == "hang_after":
            await state.hang(rule.hang_ms / 1000.0)
            return response
        return _plain_error(rule.status)
    return response


def _endpoint_handler(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return await _handle(request, endpoint)

    return handler


# --- /_sim control API
class ClockUpdate(BaseModel):
    speed: float | None = None
    time_offset_ms: int | None = None
    replay_time: int | None = None


class BalanceUpdate(BaseModel):
    account: str = "main"
    balances: dict[str, Decimal]


async def _body(request: web.Request) -> Any:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from None


def _control(
    fn: Callable[[SimState, Any], Any],
) -> Callable[[web.Request], Coroutine[Any, Any, web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        body = await _body(request) if request.method in {"POST", "PUT"} else {}
        try:
            return _json_response(fn(state, body))
        except ValidationError as exc:
            return _json_response({"error": json.loads(exc.json())}, status=400)

    return handler


def apply_faults(state: SimState, body: Any) -> dict[str, Any]:
    rules = body.pop("rules", []) if isinstance(body, dict) else []
    merged = state.faults.config.model_dump() | (body if isinstance(body, dict) else {})
    state.faults.configure(FaultConfig.model_validate(merged))
    for rule in rules:
        state.faults.add_rule(FaultRule.model_validate(rule))
    return {"faults": state.faults.config.model_dump(), "rules": [r.model_dump() for r in state.faults.rules]}


def clear_faults(state: SimState, _body: Any) -> dict[str, Any]:
    state.faults.clear()
    return {"faults": state.faults.config.model_dump(), "rules": []}


def apply_keys(state: SimState, body: Any) -> dict[str, Any]:
    for item in body if isinstance(body, list) else [body]:
        state.keys.put(ApiKeyConfig.model_validate(item))
    return {"keys": state.keys.public_view()}


def apply_clock(state: SimState, body: Any) -> dict[str, Any]:
    update = ClockUpdate.model_validate(body)
    if update.speed is not None:
        state.replay.set_speed(update.speed)
    if update.replay_time is not None:  # after the speed: a jump is exact
        state.replay.jump(update.replay_time)
    if update.time_offset_ms is not None:
        state.exchange_clock.offset_ms = update.time_offset_ms
    return state.clock_view()


def apply_balances(state: SimState, body: Any) -> dict[str, Any]:
    update = BalanceUpdate.model_validate(body)
    state.exchange.set_balances(update.account, update.balances)
    account = state.exchange.account(update.account)
    return {"account": update.account, "balances": {a: str(b.free) for a, b in account.balances.items()}}


def do_reset(state: SimState, _body: Any) -> dict[str, Any]:
    state.reset()
    return {"reset": True, "clock": state.clock_view()}


async def _orders_handler(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _json_response(state.orders_view(request.query.get("account", "main")))


def build_app(state: SimState) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[STATE_KEY] = state
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, _endpoint_handler(endpoint))
    app.router.add_get("/_sim/stats", _control(lambda s, _b: s.stats_view()))
    app.router.add_get("/_sim/orders", _orders_handler)
    app.router.add_get("/_sim/clock", _control(lambda s, _b: s.clock_view()))
    app.router.add_post("/_sim/clock", _control(apply_clock))
    app.router.add_get("/_sim/faults", _control(lambda s, b: apply_faults(s, {})))
    app.router.add_post("/_sim/faults", _control(apply_faults))
    app.router.add_delete("/_sim/faults", _control(clear_faults))
    app.router.add_get("/_sim/keys", _control(lambda s, _b: {"keys": s.keys.public_view()}))
    app.router.add_post("/_sim/keys", _control(apply_keys))
    app.router.add_post("/_sim/balances", _control(apply_balances))
    app.router.add_post("/_sim/reset", _control(do_reset))
    return app


async def _ticker(state: SimState) -> None:
    """Match resting orders even when nobody asks (a fill shows up in the next account/order query)."""
    while not state.stopping.is_set():
        state.exchange.match(state.replay.now_ms())
        if await state.hang(state.config.tick_interval_s):
            return


class Simulator:
    """A running simulator on an event loop; every method must be called on that loop."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.state = SimState(self.config)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.host = self.config.host
        self.port = self.config.port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = build_app(self.state)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # the bound socket tells the port when port=0
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._ticker = asyncio.create_task(_ticker(self.state))
        log.info("exchange simulator listening on %s (%d symbols)", self.base_url, len(self.state.market.by_id))

    async def stop(self) -> None:
        self.state.stopping.set()
        if self._ticker is not None:
            await self._ticker
            self._ticker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the control API, in process
    def stats(self) -> dict[str, Any]:
        return self.state.stats_view()

    def orders(self, account: str = "main") -> list[dict[str, Any]]:
        return self.state.orders_view(account)

    def set_faults(self, faults: FaultConfig | None = None, **changes: Any) -> None:
        """Replace the random faults (`faults`) or change some fields (`latency_ms=50, error_rate=0.1`)."""
        base = faults.model_dump() if faults is not None else self.state.faults.config.model_dump()
        self.state.faults.configure(FaultConfig.model_validate(base | changes))

    def add_fault_rule(self, rule: FaultRule | None = None, **fields: Any) -> None:
        self.state.faults.add_rule(rule if rule is not None else FaultRule.model_validate(fields))

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def set_maintenance(self, on: bool) -> None:
        self.set_faults(maintenance=on)

    def add_key(self, key: ApiKeyConfig | None = None, **fields: Any) -> ApiKeyConfig:
        api_key = key if key is not None else ApiKeyConfig.model_validate(fields)
        self.state.keys.put(api_key)
        return api_key

    def set_balances(self, balances: dict[str, Decimal | float | int | str], account: str = "main") -> None:
        self.state.exchange.set_balances(account, {k: Decimal(str(v)) for k, v in balances.items()})

    def balances(self, account: str = "main") -> dict[str, tuple[Decimal, Decimal]]:
        acct = self.state.exchange.account(account)
        return {asset: (b.free, b.locked) for asset, b in acct.balances.items()}

    def set_clock(
        self, speed: float | None = None, time_offset_ms: int | None = None, replay_time: int | None = None
    ) -> dict[str, Any]:
        return apply_clock(self.state, {"speed": speed, "time_offset_ms": time_offset_ms, "replay_time": replay_time})

    def replay_now(self) -> int:
        return self.state.replay.now_ms()

    def reset(self) -> None:
        self.state.reset()


@asynccontextmanager
async def run_simulator(config: SimulatorConfig | None = None) -> AsyncIterator[Simulator]:
    """`async with run_simulator(SimulatorConfig(...)) as sim:` -> a simulator serving on `sim.base_url`.

    The default config binds 127.0.0.1 on a free port; the simulator stops when the block exits.
    """
    sim = Simulator(config)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class ThreadedSimulator:
    """A simulator on its own event loop in a daemon thread, for synchronous code and subprocess-free tools.

    Methods are forwarded to the simulator's loop, so they are safe to call from any thread.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="traiding-simulator", daemon=True)
        self._sim: Simulator | None = None

    def start(self) -> ThreadedSimulator:
        if self._sim is not None:
            return self
        self._thread.start()
        self._sim = self._call(self._create())
        return self

    async def _create(self) -> Simulator:
        sim = Simulator(self._config)
        await sim.start()
        return sim

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _on_loop(self, fn: Callable[[Simulator], T]) -> T:
        async def run() -> T:
            assert self._sim is not None  # nosec B101  # narrows a type; not an input check
            return fn(self._sim)

        return self._call(run())

    @property
    def simulator(self) -> Simulator:
        assert self._sim is not None, "call start() first"  # nosec B101  # narrows a type; not an input check
        return self._sim

    @property
    def base_url(self) -> str:
        return self.simulator.base_url

    def stats(self) -> dict[str, Any]:
        return self._on_loop(lambda s: s.stats())

    def orders(self, account: str = "main") -> list[dict[str, Any]]:
        return self._on_loop(lambda s: s.orders(account))

    def set_faults(self, faults: FaultConfig | None = None, **changes: Any) -> None:
        self._on_loop(lambda s: s.set_faults(faults, **changes))

    def add_fault_rule(self, rule: FaultRule | None = None, **fields: Any) -> None:
        self._on_loop(lambda s: s.add_fault_rule(rule, **fields))

    def add_key(self, key: ApiKeyConfig | None = None, **fields: Any) -> ApiKeyConfig:
        return self._on_loop(lambda s: s.add_key(key, **fields))

    def set_balances(self, balances: dict[str, Decimal | float | int | str], account: str = "main") -> None:
        self._on_loop(lambda s: s.set_balances(balances, account))

    def balances(self, account: str = "main") -> dict[str, tuple[Decimal, Decimal]]:
        return self._on_loop(lambda s: s.balances(account))

    def set_clock(
        self, speed: float | None = None, time_offset_ms: int | None = None, replay_time: int | None = None
    ) -> dict[str, Any]:
        return self._on_loop(lambda s: s.set_clock(speed, time_offset_ms, replay_time))

    def reset(self) -> None:
        self._on_loop(lambda s: s.reset())

    def stop(self) -> None:
        if self._sim is not None:
            self._call(self._sim.stop())
            self._sim = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> ThreadedSimulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_simulator_thread(config: SimulatorConfig | None = None) -> ThreadedSimulator:
    """Start a simulator in a background thread; use as a context manager or call .stop()."""
    return ThreadedSimulator(config).start()


async def serve_forever(config: SimulatorConfig, on_started: Callable[[Simulator], None] | None = None) -> None:
    async with run_simulator(config) as sim:
        if on_started is not None:
            on_started(sim)
        await asyncio.Event().wait()

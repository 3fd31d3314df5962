"""`traiding simulator`: serve the Binance-compatible exchange simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from pydantic import SecretStr, ValidationError

from traiding.errors import UserError
from traiding_simulator.config import ApiKeyConfig, DataSource, FaultConfig, SimulatorConfig
from traiding_simulator.loading import DataError, bundled_sources, parse_data_argument
from traiding_simulator.market import DAY_MS
from traiding_simulator.server import Simulator, serve_forever
from traiding_simulator.urls import client_urls


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port; default 8765)")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="[SYMBOL=]PATH[@INTERVAL]",
        help="candles to replay: BTC/USDT=file.json, a file named like BTC_USDT-5m.json (.json.gz, .csv, "
        ".feather), or a folder of them such as a freqtrade data directory (repeatable; default: the bundled "
        "candles, BTC/USDT and ETH/USDT at 5m and 1h)",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="replay a seeded synthetic market (a random walk: BTC/USDT, ETH/USDT, SOL/USDT) instead of real candles",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (300: five market minutes a second)")
    parser.add_argument(
        "--start", help="replay start in the data, ISO time or epoch ms (default: 80%% through the data's span)"
    )
    parser.add_argument(
        "--align-to-wall-clock",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shift candle times by whole days so the replay runs on today's date, one clock with the server time "
        "(default; --no-align-to-wall-clock serves the data's own dates)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic market and the fault dice")
    parser.add_argument("--weight-limit", type=int, default=6000, help="request weight per minute (default 6000)")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY:SECRET[:trade][:withdraw]",
        help="an API key; without :trade it may only read (repeatable)",
    )
    parser.add_argument("--time-offset-ms", type=int, default=0, help="exchange clock minus real clock")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="probability of a 5xx answer per request")
    parser.add_argument("--spread-bps", type=float, default=2.0, help="full bid/ask spread in basis points")
    parser.add_argument("--fee", type=str, default="0.001", help="maker and taker commission rate (0.001 = 0.1%%)")
    parser.add_argument(
        "--duplicate-client-order-id",
        choices=["open", "any"],
        default="open",
        help="reject a reused newClientOrderId only while its order is open (open, as Binance) or always (any)",
    )
    parser.add_argument(
        "--order-counting",
        choices=["unfilled", "all"],
        default="unfilled",
        help="unfilled order count as Binance (unfilled: a first fill takes an order off the count) or every "
        "order counted (all)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")


def parse_key(text: str) -> ApiKeyConfig:
    parts = text.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise UserError(f"--key {text.split(':', maxsplit=1)[0]}:...: expected KEY:SECRET[:trade][:withdraw]")
    flags = set(parts[2:])
    unknown = flags - {"trade", "withdraw"}
    if unknown:
        raise UserError(f"--key {parts[0]}:...: unknown permission(s) {sorted(unknown)}; use trade, withdraw")
    return ApiKeyConfig(
        key=parts[0], secret=SecretStr(parts[1]), can_trade="trade" in flags, can_withdraw="withdraw" in flags
    )


def _parse_start(text: str | None) -> datetime | int | None:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--start {text!r}: expected an ISO time like 2021-06-01T00:00 or epoch milliseconds") from None
    return start if start.tzinfo else start.replace(tzinfo=UTC)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    if args.synthetic and args.data:
        raise UserError("--synthetic and --data exclude each other: replay either a synthetic market or candles")
    try:
        data: list[DataSource] = [parse_data_argument(text) for text in args.data]
        if not data and not args.synthetic:
            data = bundled_sources()
        return SimulatorConfig(
            host=args.host,
            port=args.port,
            data=data,
            speed=args.speed,
            start=_parse_start(args.start),
            align_to_wall_clock=args.align_to_wall_clock,
            seed=args.seed,
            weight_limit=args.weight_limit,
            keys=[parse_key(k) for k in args.key],
            time_offset_ms=args.time_offset_ms,
            faults=FaultConfig(latency_ms=args.latency_ms, error_rate=args.error_rate),
            spread_bps=args.spread_bps,
            taker_fee=Decimal(args.fee),
            maker_fee=Decimal(args.fee),
            duplicate_client_order_id=args.duplicate_client_order_id,
            order_counting=args.order_counting,
            log_requests=not args.quiet,
        )
    except (ValidationError, DataError, ValueError, InvalidOperation) as exc:
        raise UserError(str(exc)) from None


def _announce(sim: Simulator) -> None:
    clock = sim.state.clock_view()
    symbols = ", ".join(sim.state.market.by_symbol)
    start = datetime.fromtimestamp(clock["replay_time"] // 1000, UTC).isoformat()
    shift = int(clock["shift_ms"])
    if shift:  # the candles run on today's date: say where in the data that is
        in_data = datetime.fromtimestamp((clock["replay_time"] - shift) // 1000, UTC).isoformat()
        start += f" ({in_data} in the data, its dates moved {shift // DAY_MS} days onto today's)"
    print(f"exchange simulator on {sim.base_url}  symbols: {symbols}", flush=True)
    print(f"replay starts at {start} at {clock['speed']}x; control API: {sim.base_url}/_sim/stats", flush=True)
    print(f"ccxt: exchange.urls['api'] = {client_urls(sim.base_url)['public']!r} (+ private, sapi, ...)", flush=True)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if config.host not in {"127.0.0.1", "localhost", "::1"}:
        logging.getLogger("traiding_simulator").warning(
            "binding %s: the simulator is reachable from the network", config.host
        )
    try:
        asyncio.run(serve_forever(config, _announce))
    except DataError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    return 0

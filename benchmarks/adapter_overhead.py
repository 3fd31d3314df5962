"""Per-request overhead of the exchange adapter against a raw HTTP GET of the same endpoint.

Starts the exchange simulator in a separate process (so its work does not share our event loop), then
times N requests of each client, interleaved round by round in this one process:

- raw:     aiohttp GET + json.loads of the Binance endpoint (the floor: one HTTP round trip)
- raw+num: (klines only) the same plus turning the rows' decimal strings into a float array
- ccxt:    ccxt.async_support.binance's fetch_ticker / fetch_ohlcv (what ccxt itself adds)
- adapter: traiding_adapters' CcxtExchange (ccxt + shared weight budget + circuit + retries + models)

and prints median and p95 per client, the ratios adapter/raw and ccxt/raw (so the report shows where the
time goes), and the shared limiter's weight used against its budget.

    .venv/bin/python benchmarks/adapter_overhead.py [--requests 300] [--data ../shared/data/BTC_USDT-5m.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import numpy as np

from traiding_adapters import ExchangeHub, ExchangeSettings
from traiding_simulator import ccxt_config, client_urls

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "BTC_USDT-5m.json"
WEIGHT_LIMIT = 1_000_000  # the simulator's limit: the raw clients are not budgeted, so keep them unthrottled

_SERVER = """
import asyncio, sys
from pathlib import Path
from traiding_simulator import SimulatorConfig, DataSource
from traiding_simulator.server import serve_forever
data = sys.argv[1]
config = SimulatorConfig(
    data=[DataSource(symbol="BTC/USDT", path=Path(data))] if data else [],
    weight_limit=int(sys.argv[2]), log_requests=False, speed=0.0, start_fraction=1.0,
)
asyncio.run(serve_forever(config, lambda sim: print(sim.base_url, flush=True)))
"""


def start_simulator(data: Path | None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(data) if data else "", str(WEIGHT_LIMIT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http"):
        process.kill()
        raise SystemExit("the simulator did not start")
    return process, base_url


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def compare(name: str, clients: dict[str, Callable[[], Awaitable[Any]]], requests: int) -> None:
    for call in clients.values():  # warm up connections and caches
        for _ in range(5):
            await call()
    samples: dict[str, list[float]] = {label: [] for label in clients}
    for _ in range(requests):
        for label, call in clients.items():  # interleaved: drift and noise hit every client alike
            samples[label].append(await timed(call))
    raw_median, _ = summary(samples["raw"])
    print(f"\n{name}: {requests} requests per client, interleaved")
    print(f"  {'client':<8} {'median ms':>10} {'p95 ms':>10} {'vs raw':>8}")
    for label, values in samples.items():
        median, p95 = summary(values)
        print(f"  {label:<8} {median:>10.3f} {p95:>10.3f} {median / raw_median:>7.2f}x")
    if "raw+num" in samples:
        floor, _ = summary(samples["raw+num"])
        print(
            f"  adapter / raw+num = {summary(samples['adapter'])[0] / floor:.2f}x "
            "(raw+num also turns the rows' decimal strings into numbers, work any client must do)"
        )
    ccxt_median, _ = summary(samples["ccxt"])
    adapter_median, _ = summary(samples["adapter"])
    print(
        f"  adapter / raw = {adapter_median / raw_median:.2f}x (target < 1.3x); "
        f"of which ccxt / raw = {ccxt_median / raw_median:.2f}x, adapter / ccxt = {adapter_median / ccxt_median:.2f}x"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="candle file (default: real BTC 5m)")
    args = parser.parse_args()
    data = args.data if args.data and args.data.is_file() else None
    process, base_url = start_simulator(data)
    hub = ExchangeHub(ExchangeSettings())
    adapter = hub.get("binance", None, urls=client_urls(base_url))
    raw_ccxt = ccxt.binance({**ccxt_config(base_url), "enableRateLimit": False})
    session = aiohttp.ClientSession()
    try:
        await adapter.load_markets()
        await raw_ccxt.load_markets()
        timeframe, step = ("5m", 300_000) if data else ("1m", 60_000)
        klines_url = f"{base_url}/api/v3/klines"
        latest = json.loads(
            await (
                await session.get(klines_url, params={"symbol": "BTCUSDT", "interval": timeframe, "limit": 1})
            ).text()
        )
        until = int(latest[-1][0]) - 10 * step
        since = until - 1000 * step  # exactly one full page of 1000 candles

        async def raw_ticker() -> Any:
            async with session.get(f"{base_url}/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"}) as response:
                return json.loads(await response.text())

        async def raw_klines() -> Any:
            params: dict[str, str | int] = {
                "symbol": "BTCUSDT",
                "interval": timeframe,
                "startTime": since,
                "endTime": until - 1,
                "limit": 1000,
            }
            async with session.get(klines_url, params=params) as response:
                return json.loads(await response.text())

        await compare(
            "fetch_ticker (GET /api/v3/ticker/24hr)",
            {
                "raw": raw_ticker,
                "ccxt": lambda: raw_ccxt.fetch_ticker("BTC/USDT"),
                "adapter": lambda: adapter.fetch_ticker("BTC/USDT"),
            },
            args.requests,
        )

        async def raw_klines_as_numbers() -> Any:
            rows = await raw_klines()
            return np.array([row[:6] for row in rows], dtype=np.float64)

        await compare(
            "fetch_ohlcv, one page of 1000 candles (GET /api/v3/klines)",
            {
                "raw": raw_klines,
                "raw+num": raw_klines_as_numbers,
                "ccxt": lambda: raw_ccxt.fetch_ohlcv("BTC/USDT", timeframe, since, 1000, {"until": until - 1}),
                "adapter": lambda: adapter.fetch_ohlcv("BTC/USDT", timeframe, since, until),
            },
            max(args.requests // 5, 20),
        )
        stats = hub.budget_stats()["binance:"]
        print(
            f"\nshared limiter: {stats.requests} requests, {stats.total_weight:.0f} weight booked; "
            f"{stats.used:.0f} used in the current window of a {stats.capacity:.0f} budget "
            f"({stats.limit:.0f} declared by the exchange x safety); peak {stats.peak_used:.0f}; "
            f"waits {stats.waits}; exchange header {stats.header_used}"
        )
    finally:
        await session.close()
        await raw_ccxt.close()
        await adapter.close()
        await hub.close()
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())

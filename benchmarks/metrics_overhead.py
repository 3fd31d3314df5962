"""What the metrics cost: per-report time against the null observer, and one scrape of a busy operator.

Times, in this one process and the same run:
- an exchange request report (`Metrics.exchange_request`, a histogram observation) against the null
  observer the exchange layer uses without metrics;
- an order report (`Metrics.order_executed`) likewise;
- one scrape (`generate_latest`) of a registry holding `--runs` runs in the RunBook and traffic on 2
  exchanges x 4 endpoint classes x 4 outcomes, against the adapter's ~1.2 ms fetch_ticker round trip
  (docs/exchange-layer.md) for scale.

    .venv/bin/python benchmarks/metrics_overhead.py [--calls 200000] [--runs 100]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from prometheus_client import generate_latest

from traiding.telemetry.metrics import ENDPOINT_CLASSES, OUTCOMES, Metrics
from traiding.telemetry.runs import RunFacts
from traiding_adapters.observer import NULL_OBSERVER


def per_call_ns(call: Callable[[], object], calls: int, rounds: int = 5) -> float:
    """The median over `rounds` of the mean time of one call, in nanoseconds."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()

    metrics = Metrics("operator")
    request_null = per_call_ns(lambda: NULL_OBSERVER.exchange_request("binance", "market_data", "ok", 0.01), args.calls)
    request = per_call_ns(lambda: metrics.exchange_request("binance", "market_data", "ok", 0.01), args.calls)
    order_null = per_call_ns(lambda: NULL_OBSERVER.order_executed("binance", "live", "ack", 0.2), args.calls)
    order = per_call_ns(lambda: metrics.order_executed("binance", "live", "ack", 0.2), args.calls)

    for exchange in ("binance", "kraken"):
        for endpoint in ENDPOINT_CLASSES:
            for outcome in OUTCOMES:
                metrics.exchange_request(exchange, endpoint, outcome, 0.05)
    for i in range(args.runs):
        metrics.runs.observe(
            ("trading", f"run-{i:03d}"), RunFacts("Trading", "dry-run", "manual", 1, "USDT", 1.0, 0.01)
        )
    body = generate_latest(metrics.registry)
    lines = body.count(b"\n")
    scrape_ms = per_call_ns(lambda: generate_latest(metrics.registry), 200) / 1e6

    print(
        f"exchange request report: {request:8.0f} ns   null observer: {request_null:6.0f} ns   "
        f"extra: {request - request_null:6.0f} ns per request"
    )
    print(
        f"order report:            {order:8.0f} ns   null observer: {order_null:6.0f} ns   "
        f"extra: {order - order_null:6.0f} ns per order (two per filled order)"
    )
    print(f"scrape with {args.runs} runs:      {scrape_ms:8.2f} ms   ({len(body) / 1024:.0f} KiB, {lines} lines)")
    print(f"one request's report against a ~1.2 ms fetch_ticker round trip: {(request - request_null) / 1.2e6:.2%}")


if __name__ == "__main__":
    main()

"""Telemetry: Prometheus metrics, the SLOs and their alert rules, and the JSON logging setup.

The only package that imports `prometheus_client`. The layers below report into it without importing it:
the exchange layer calls an `ExchangeObserver` (traiding_adapters.observer) that `Metrics` satisfies, and
the pipeline's events reach it through `RunMetricsSink`, an ordinary event sink. It imports nothing but the
domain (phase names), the TradingRun model's JSON shape, the standard library and its own libraries.
"""

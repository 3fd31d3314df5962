"""Every Prometheus metric the product exports, on one registry per process (`Metrics`).

Labels are bounded: exchange ids, endpoint classes, outcomes, error class names, phases, modes and triggers
are small fixed sets. Run names appear only on the per-run ROI/PnL gauges of `RunBook` (see runs.py), which
exist while a run trades and are capped.

`Metrics` satisfies the exchange layer's `ExchangeObserver` protocol structurally, so the adapters report
into it without importing this package.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator, Mapping
from threading import Lock
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from traiding import __version__
from traiding.domain.statemachine import ALLOWED, Phase
from traiding.telemetry.runs import RunBook

MODES = ("dry-run", "live")
TRIGGERS = ("manual", "nightly")  # nightly: the run carries the label traiding.io/nightly=true
CIRCUIT_STATES = ("closed", "half-open", "open")
ENDPOINT_CLASSES = ("market_data", "account", "order", "system")
OUTCOMES = ("ok", "rejected", "rate_limited", "error")  # rejected: the exchange answered with a refusal

# The SLO thresholds (500 ms exchange latency, 1 s trade execution) must be bucket boundaries: a latency
# SLI counts the requests in the bucket `le=threshold`.
EXCHANGE_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ORDER_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PHASE_DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 259200.0)

EXCHANGE_LATENCY = "traiding_exchange_request_duration_seconds"
ORDER_LATENCY = "traiding_order_latency_seconds"


class ExchangeState(Protocol):
    """One exchange's connections as the exchange hub reports them at scrape time."""

    @property
    def exchange_id(self) -> str: ...

    @property
    def circuits(self) -> Mapping[str, int]: ...  # circuit state -> connections in it

    @property
    def budget_used_ratio(self) -> float: ...  # the fullest budget of the exchange: used / capacity

    @property
    def budget_waits(self) -> int: ...  # requests that waited for the budget, since the process started


class ExchangeStateSource(Protocol):
    def exchange_states(self) -> Iterable[ExchangeState]: ...


class _ExchangeCollector(Collector):
    """Circuit breaker states and rate-budget use, read from the hubs when Prometheus scrapes."""

    def __init__(self) -> None:
        self._sources: list[ExchangeStateSource] = []
        self._lock = Lock()

    def add(self, source: ExchangeStateSource) -> None:
        with self._lock:
            self._sources.append(source)

    def remove(self, source: ExchangeStateSource) -> None:
        with self._lock:
            if source in self._sources:
                self._sources.remove(source)

    def collect(self) -> Iterator[Metric]:
        circuit = GaugeMetricFamily(
            "traiding_circuit_breaker_state",
            "Exchange connections whose circuit breaker is in each state (closed, half-open, open).",
            labels=["exchange", "state"],
        )
        used = GaugeMetricFamily(
            "traiding_rate_budget_used_ratio",
            "Request weight used in the current window over the weight we allow ourselves (fullest key).",
            labels=["exchange"],
        )
        waits = CounterMetricFamily(
            "traiding_rate_budget_waits",
            "Requests that had to wait for the shared rate-limit budget.",
            labels=["exchange"],
        )
        with self._lock:
            sources = list(self._sources)
        for source in sources:
            for state in source.exchange_states():
                for name in CIRCUIT_STATES:
                    circuit.add_metric([state.exchange_id, name], state.circuits.get(name, 0))
                used.add_metric([state.exchange_id], state.budget_used_ratio)
                waits.add_metric([state.exchange_id], state.budget_waits)
        yield circuit
        yield used
        yield waits


class Metrics:
    """The process's metrics on their own registry (served on /metrics by `serve_metrics`)."""

    def __init__(self, component: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        build = Gauge(
            "traiding_build_info",
            "Version of the running traiding process.",
            ["version", "component", "python"],
            registry=r,
        )
        build.labels(__version__, component, platform.python_version()).set(1)
        self.exchange_latency = Histogram(
            EXCHANGE_LATENCY,
            "Exchange HTTP request round trips, by exchange, endpoint class and outcome.",
            ["exchange", "endpoint", "outcome"],
            buckets=EXCHANGE_LATENCY_BUCKETS,
            registry=r,
        )
        self.exchange_errors = Counter(
            "traiding_exchange_errors",
            "Failed exchange-layer calls by error class (ExchangeUnavailable, RateLimited, CircuitOpen, ...).",
            ["exchange", "error_class"],
            registry=r,
        )
        self.order_latency = Histogram(
            ORDER_LATENCY,
            "Order execution latency: submit to acknowledgement (stage=ack) and to fill (stage=fill).",
            ["exchange", "mode", "stage"],
            buckets=ORDER_LATENCY_BUCKETS,
            registry=r,
        )
        self.phase_duration = Histogram(
            "traiding_phase_duration_seconds",
            "How long phases took, by phase, mode and how they ended (Passed, Failed, Cancelled).",
            ["phase", "mode", "result"],
            buckets=PHASE_DURATION_BUCKETS,
            registry=r,
        )
        self.transitions = Counter(
            "traiding_phase_transitions",
            "Phase transitions of runs driven by this process.",
            ["from_phase", "to_phase", "mode", "trigger"],
            registry=r,
        )
        self.kill_switch_trips = Counter(
            "traiding_kill_switch_trips",
            "Trading sessions stopped by their kill switch (max drawdown or daily loss limit).",
            ["mode", "trigger"],
            registry=r,
        )
        # Zero-valued series from the start: a counter whose first sample is already 1 hides that increase
        # from increase() and rate(), and the alerts on failed runs and kill switches use them.
        for mode in MODES:
            for trigger in TRIGGERS:
                self.kill_switch_trips.labels(mode, trigger)
                for source, targets in ALLOWED.items():
                    for target in targets:
                        self.transitions.labels(source.value, target.value, mode, trigger)
        self.runs = RunBook(MODES, TRIGGERS)
        r.register(self.runs)
        self._exchanges = _ExchangeCollector()
        r.register(self._exchanges)

    # -- ExchangeObserver (traiding_adapters.observer) ------------------------------------------------------

    def exchange_request(self, exchange: str, endpoint: str, outcome: str, seconds: float) -> None:
        self.exchange_latency.labels(exchange, endpoint, outcome).observe(seconds)

    def exchange_error(self, exchange: str, error_class: str) -> None:
        self.exchange_errors.labels(exchange, error_class).inc()

    def order_executed(self, exchange: str, mode: str, stage: str, seconds: float) -> None:
        self.order_latency.labels(exchange, mode, stage).observe(seconds)

    # -- the pipeline's events (through RunMetricsSink) -----------------------------------------------------

    def phase_changed(self, source: str, target: str, mode: str, trigger: str, seconds: float | None) -> None:
        self.transitions.labels(source, target, mode, trigger).inc()
        if seconds is not None and source != Phase.PENDING:
            result = {Phase.FAILED: "Failed", Phase.CANCELLED: "Cancelled"}.get(Phase(target), "Passed")
            self.phase_duration.labels(source, mode, result).observe(seconds)

    def kill_switch(self, mode: str, trigger: str) -> None:
        self.kill_switch_trips.labels(mode, trigger).inc()

    # -- state read at scrape time --------------------------------------------------------------------------

    def watch_exchanges(self, source: ExchangeStateSource) -> None:
        """Export `source`'s circuit breakers and rate budgets (an ExchangeHub) until `unwatch_exchanges`."""
        self._exchanges.add(source)

    def unwatch_exchanges(self, source: ExchangeStateSource) -> None:
        self._exchanges.remove(source)

"""The metrics registry: what each report adds, bounded labels, run facts from a TradingRun, the server."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.prometheus_server import free_port
from traiding import __version__
from traiding.errors import UserError
from traiding.pipeline.events import EventLog
from traiding.telemetry.metrics import Metrics
from traiding.telemetry.runs import MAX_RUN_SERIES, RunFacts, facts_of
from traiding.telemetry.server import port_from, serve_metrics
from traiding.telemetry.sink import RunMetricsSink


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_build_info_names_the_version() -> None:
    metrics = Metrics("operator")
    samples = [s for m in metrics.registry.collect() if m.name == "traiding_build_info" for s in m.samples]
    assert [(s.labels["version"], s.labels["component"], s.value) for s in samples] == [(__version__, "operator", 1)]


def test_exchange_requests_and_errors() -> None:
    metrics = Metrics("operator")
    metrics.exchange_request("binance", "market_data", "ok", 0.3)
    metrics.exchange_request("binance", "market_data", "ok", 0.7)
    metrics.exchange_error("binance", "ExchangeUnavailable")
    name = "traiding_exchange_request_duration_seconds"
    labels = {"exchange": "binance", "endpoint": "market_data", "outcome": "ok"}
    assert value(metrics, f"{name}_count", **labels) == 2
    assert value(metrics, f"{name}_bucket", **labels, le="0.5") == 1  # the SLO's bucket
    assert value(metrics, "traiding_exchange_errors_total", exchange="binance", error_class="ExchangeUnavailable") == 1


def test_order_latency_has_the_trade_execution_bucket() -> None:
    metrics = Metrics("run")
    metrics.order_executed("binance", "dry-run", "fill", 0.2)
    labels = {"exchange": "binance", "mode": "dry-run", "stage": "fill"}
    assert value(metrics, "traiding_order_latency_seconds_bucket", **labels, le="1.0") == 1


def test_phase_changes_count_transitions_and_time_the_finished_phase() -> None:
    metrics = Metrics("operator")
    metrics.phase_changed("Pending", "DataCheck", "dry-run", "nightly", None)
    metrics.phase_changed("Backtest", "Failed", "dry-run", "nightly", 12.0)
    transitions = "traiding_phase_transitions_total"
    assert value(metrics, transitions, from_phase="Backtest", to_phase="Failed", mode="dry-run", trigger="nightly") == 1
    labels = {"phase": "Backtest", "mode": "dry-run", "result": "Failed"}
    assert value(metrics, "traiding_phase_duration_seconds_sum", **labels) == 12.0
    assert (
        value(metrics, "traiding_phase_duration_seconds_count", phase="Pending", mode="dry-run", result="Passed")
        is None
    )


def test_alerting_counters_exist_at_zero_before_anything_happens() -> None:
    # increase() cannot see a counter's first increment if its series starts at 1
    metrics = Metrics("operator")
    assert value(metrics, "traiding_kill_switch_trips_total", mode="live", trigger="manual") == 0
    failed = {"from_phase": "Trading", "to_phase": "Failed", "mode": "dry-run", "trigger": "nightly"}
    assert value(metrics, "traiding_phase_transitions_total", **failed) == 0
    assert (
        value(
            metrics,
            "traiding_phase_transitions_total",
            from_phase="Succeeded",
            to_phase="Failed",
            mode="live",
            trigger="manual",
        )
        is None
    )


def test_the_event_sink_counts_phase_changes_and_kill_switches() -> None:
    metrics = Metrics("operator")
    events = EventLog("run-1", [RunMetricsSink(metrics, mode="live", trigger="manual")])
    events.emit(
        "Reporting",
        "PhaseChanged",
        "Trading -> Reporting",
        metrics={"from": "Trading", "to": "Reporting", "durationSeconds": 60},
    )
    events.emit("Trading", "KillSwitch", "max drawdown")
    events.emit("Trading", "OrderFilled", "bought")
    transitions = {"from_phase": "Trading", "to_phase": "Reporting", "mode": "live", "trigger": "manual"}
    assert value(metrics, "traiding_phase_transitions_total", **transitions) == 1
    assert value(metrics, "traiding_phase_duration_seconds_sum", phase="Trading", mode="live", result="Passed") == 60
    assert value(metrics, "traiding_kill_switch_trips_total", mode="live", trigger="manual") == 1


def run_json(phase: str, **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, **extra}
    return {
        "metadata": {"name": "r", "labels": {"traiding.io/nightly": "true"}},
        "spec": {"mode": "live", "capital": {"currency": "USDT", "initial": 10_000}},
        "status": status,
    }


def test_facts_of_a_trading_run() -> None:
    trading = facts_of(run_json("Trading", phases={"Trading": {"results": {"equity": 10_250.0, "openPositions": 1}}}))
    assert trading == RunFacts("Trading", "live", "nightly", 1, "USDT", 250.0, 2.5)
    summary = {"pnl": -100.0, "roiPct": -1.0}
    assert facts_of(run_json("Succeeded", summary=summary)).roi_pct == -1.0
    frozen = run_json("Trading", checkpoint={"spec": {"mode": "dry-run"}})
    assert facts_of(frozen).mode == "dry-run"  # the spec the run started with
    assert facts_of({"metadata": {}, "spec": {}}) == RunFacts("Pending", "dry-run", "manual", 0, "", None, None)


def gauges(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in metrics.registry.collect()
        if m.name.startswith("traiding_run")
        for s in m.samples
    }


def test_the_run_book_counts_runs_and_exports_money_only_while_a_run_is_unfinished() -> None:
    metrics = Metrics("operator")
    book = metrics.runs
    book.observe(("ns", "trading"), RunFacts("Trading", "live", "manual", 1, "USDT", 50.0, 0.5))
    book.observe(("ns", "stranded"), RunFacts("Failed", "live", "manual", 2, "USDT", -10.0, -0.1))
    book.observe(("ns", "done"), RunFacts("Succeeded", "dry-run", "nightly", 0, "USDT", 5.0, 0.05))
    found = gauges(metrics)
    assert found[("traiding_runs", (("mode", "live"), ("phase", "Trading"), ("trigger", "manual")))] == 1
    assert found[("traiding_runs", (("mode", "dry-run"), ("phase", "Pending"), ("trigger", "manual")))] == 0
    assert found[("traiding_runs_stopped_with_open_positions", (("mode", "live"), ("trigger", "manual")))] == 1
    roi = {labels: v for (name, labels), v in found.items() if name == "traiding_run_roi_percent"}
    assert roi == {(("mode", "live"), ("run", "trading"), ("run_namespace", "ns")): 0.5}
    book.forget(("ns", "stranded"))
    assert (
        gauges(metrics)[("traiding_runs_stopped_with_open_positions", (("mode", "live"), ("trigger", "manual")))] == 0
    )


def test_per_run_series_are_capped() -> None:
    metrics = Metrics("operator")
    for i in range(MAX_RUN_SERIES + 20):
        metrics.runs.observe(("ns", f"run-{i:04d}"), RunFacts("Trading", "dry-run", "manual", 0, "USDT", 1.0, 0.01))
    pnl = [k for k in gauges(metrics) if k[0] == "traiding_run_pnl"]
    assert len(pnl) == MAX_RUN_SERIES


@dataclass(frozen=True)
class FakeState:
    exchange_id: str
    circuits: Mapping[str, int] = field(default_factory=dict)
    budget_used_ratio: float = 0.0
    budget_waits: int = 0


class FakeHub:
    def __init__(self, *states: FakeState) -> None:
        self.states = list(states)

    def exchange_states(self) -> list[FakeState]:
        return self.states


def test_circuit_breakers_and_budgets_are_read_from_the_hubs_at_scrape_time() -> None:
    metrics = Metrics("operator")
    hub = FakeHub(FakeState("binance", {"open": 1, "closed": 2}, 0.25, 3))
    metrics.watch_exchanges(hub)
    assert value(metrics, "traiding_circuit_breaker_state", exchange="binance", state="open") == 1
    assert value(metrics, "traiding_circuit_breaker_state", exchange="binance", state="half-open") == 0
    assert value(metrics, "traiding_rate_budget_used_ratio", exchange="binance") == 0.25
    assert value(metrics, "traiding_rate_budget_waits_total", exchange="binance") == 3
    hub.states = [FakeState("binance", {"closed": 3}, 0.5, 4)]
    assert value(metrics, "traiding_circuit_breaker_state", exchange="binance", state="open") == 0
    metrics.unwatch_exchanges(hub)
    assert value(metrics, "traiding_rate_budget_used_ratio", exchange="binance") is None


def test_the_server_serves_metrics_and_port_zero_serves_nothing() -> None:
    metrics = Metrics("run")
    assert serve_metrics(metrics, 0, "127.0.0.1") is None
    server = serve_metrics(metrics, (port_from("65000", env={}) and 0) or 0, "127.0.0.1")
    assert server is None
    started = serve_metrics(metrics, free_port(), "127.0.0.1")
    assert started is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{started.port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert "traiding_build_info{" in body and "traiding_runs{" in body
        with pytest.raises(UserError, match=f"cannot serve metrics on 127.0.0.1:{started.port}"):
            serve_metrics(metrics, started.port, "127.0.0.1")
    finally:
        started.stop()


def test_ports_come_from_the_flag_then_the_environment_then_the_default() -> None:
    assert port_from("9100", env={"TRAIDING_METRICS_PORT": "9200"}, default=8000) == 9100
    assert port_from(None, env={"TRAIDING_METRICS_PORT": "9200"}, default=8000) == 9200
    assert port_from(None, env={}, default=8000) == 8000
    assert port_from("0", env={}, default=8000) == 0
    with pytest.raises(UserError, match="'eighty'"):
        port_from("eighty", env={})
    with pytest.raises(UserError, match="70000"):
        port_from(None, env={"TRAIDING_METRICS_PORT": "70000"})

"""Fault dice are seeded (a failing run replays exactly) and targeted rules are used up one by one."""

from __future__ import annotations

from traiding_simulator.config import FaultConfig, FaultRule
from traiding_simulator.faults import Faults


def rolls(faults: Faults, n: int = 200) -> list[tuple[int | None, float | None]]:
    return [(f.error_status, f.hang_s) for f in (faults.roll("/api/v3/time") for _ in range(n))]


def test_the_same_seed_injects_the_same_faults() -> None:
    config = FaultConfig(error_rate=0.2, timeout_rate=0.1, seed=5, hang_ms=1000)
    first, second = rolls(Faults(config, default_seed=1)), rolls(Faults(config, default_seed=2))
    assert first == second
    errors = sum(1 for status, _ in first if status == 503)
    hangs = sum(1 for _, hang in first if hang == 1.0)
    assert 20 < errors < 60 and 5 < hangs < 40
    assert rolls(Faults(config.model_copy(update={"seed": 6}), default_seed=1)) != first


def test_no_faults_by_default_and_paths_restrict_them() -> None:
    assert set(rolls(Faults(FaultConfig(), 1))) == {(None, None)}
    faults = Faults(FaultConfig(error_rate=1.0, paths=["/api/v3/order"]), 1)
    assert faults.roll("/api/v3/time").error_status is None
    assert faults.roll("/api/v3/order").error_status == 503
    assert faults.injected == {"error": 1}


def test_latency_with_jitter_stays_in_range() -> None:
    faults = Faults(FaultConfig(latency_ms=100, latency_jitter_ms=50, seed=1), 1)
    delays = [faults.roll("/x").latency_s for _ in range(100)]
    assert all(0.1 <= d <= 0.15 for d in delays) and len(set(delays)) > 50


def test_rules_match_method_and_path_and_are_used_up() -> None:
    faults = Faults(FaultConfig(), 1)
    faults.add_rule(FaultRule(method="POST", path="/api/v3/order", count=2, action="hang_after"))
    faults.add_rule(FaultRule(method="GET", path="/api/v3/order", action="error_before"))
    assert faults.take_rule("GET", "/api/v3/time") is None
    assert faults.take_rule("DELETE", "/api/v3/order") is None
    taken = [faults.take_rule("POST", "/api/v3/order") for _ in range(3)]
    assert [r.action if r else None for r in taken] == ["hang_after", "hang_after", None]
    rule = faults.take_rule("get", "/api/v3/order")
    assert rule is not None and rule.action == "error_before"
    assert faults.rules == [] and faults.injected == {"hang_after": 2, "error_before": 1}

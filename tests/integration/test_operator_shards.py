"""Sharding on the real control plane: two `traiding operator` processes on disjoint shards of one namespace.

Each drives only the runs of its shard (the runs' Events name the operator that wrote them, their finalizer
is put by that operator only); the default shard also drives the runs without the label; a run labelled with a
shard no operator serves is left alone; and the runs by phase, summed over both operators' /metrics, count
each run once.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import watch

from tests.cluster_plugin import KubeCluster
from tests.integration.live_operator import LiveRuns, OperatorProcess
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from tests.integration.test_operator import (
    FINAL,
    GROUP,
    PLURAL,
    VERSION,
    create_run,
    get_run,
    manifest,
    message_of,
    objects,
    phase_is,
    run_events,
    start_simulator,
    wait_for_run,
)
from tests.prometheus_server import free_port
from traiding_operator.handlers import FINALIZER
from traiding_operator.shards import SHARD_LABEL, Shard
from traiding_simulator import ThreadedSimulator

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("crd_installed")]

RUNS_GAUGE = re.compile(r"^traiding_runs\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)
# run name -> its shard label (None: none) and the operator that drives it (None: nobody)
RUNS: dict[str, tuple[str | None, str | None]] = {
    "in-a": ("a", "op-a"),
    "in-b": ("b", "op-b"),
    "unlabelled": (None, "op-a"),  # op-a is the default shard
    "in-c": ("c", None),  # no operator serves shard c
}


@pytest.fixture
def shard_operators(
    kube_cluster: KubeCluster, k8s_namespace: str, tmp_path: Path, sim: ThreadedSimulator
) -> Iterator[list[OperatorProcess]]:
    """Two operators on shards a (also the unlabelled runs) and b, started once the test's simulator is allowed."""
    operators = [
        OperatorProcess(kube_cluster, k8s_namespace, tmp_path, "op-a", extra_args=("--shard", "a", "--default-shard"),
                        metrics_port=free_port()),
        OperatorProcess(kube_cluster, k8s_namespace, tmp_path, "op-b", extra_args=("--shard", "b"),
                        metrics_port=free_port()),
    ]  # fmt: skip
    try:
        yield [operator.start() for operator in operators]
    finally:
        for operator in operators:
            operator.stop()


@pytest.fixture
def sim(shared_data: Path) -> Iterator[ThreadedSimulator]:
    running = start_simulator(shared_data)
    try:
        yield running
    finally:
        running.stop()


def runs_counted(operator: OperatorProcess) -> float:
    """The sum of the operator's traiding_runs gauge: how many runs it counts, over every phase."""
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(m["value"]) for m in RUNS_GAUGE.finditer(text))


def wait_for_counts(operators: list[OperatorProcess], expected: list[float], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    counts: list[float] = []
    while time.monotonic() < deadline:
        try:
            counts = [runs_counted(operator) for operator in operators]
        except OSError:  # the metrics server is not up yet
            counts = []
        if counts == expected:
            return
        time.sleep(0.5)
    logs = "\n".join(operator.log_tail() for operator in operators)
    pytest.fail(f"runs counted by the operators: {counts}, expected {expected}\n{logs}", pytrace=False)


class FinalizerLog:
    """Every finalizer list each run had, in order, from a watch of the namespace's runs (a watch reports every
    change); repeats of the same list collapsed."""

    def __init__(self, k8s_api: Any, namespace: str) -> None:
        self.lists: dict[str, list[tuple[str, ...]]] = {}
        self._stopped = threading.Event()
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        stream = self._watch.stream(  # type: ignore[no-untyped-call]
            objects(k8s_api).list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, timeout_seconds=600
        )
        self._thread = threading.Thread(target=self._follow, args=(stream,), daemon=True)
        self._thread.start()

    def _follow(self, stream: Iterator[dict[str, Any]]) -> None:
        try:
            for event in stream:
                metadata = event["object"]["metadata"]
                seen = self.lists.setdefault(metadata["name"], [])
                finalizers = tuple(metadata.get("finalizers") or ())
                if not seen or seen[-1] != finalizers:
                    seen.append(finalizers)
        except urllib3.exceptions.ProtocolError:
            if not self._stopped.is_set():  # a watch cut short leaves the lists incomplete: the test fails on them
                raise

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()  # type: ignore[no-untyped-call]
        self._thread.join(10)


def test_two_operators_on_disjoint_shards_each_drive_only_their_own_runs(
    shard_operators: list[OperatorProcess], sim: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
    finalizers = FinalizerLog(k8s_api, k8s_namespace)
    time.sleep(0.5)  # the watch is open before the first run is created
    for name, (shard, _) in RUNS.items():
        body = manifest(name)
        if shard is not None:
            body["metadata"]["labels"] = {SHARD_LABEL: shard}
        create_run(k8s_api, k8s_namespace, body)

    for name, (_, driver) in RUNS.items():
        if driver is None:
            continue
        run = wait_for_run(k8s_api, k8s_namespace, name, phase_is(*FINAL), "final phase")
        assert run["status"]["phase"] == "Succeeded", (name, run["status"].get("message"))
        events = [e for e in run_events(k8s_api, k8s_namespace, name) if e.reason == "PhaseChanged"]
        assert len(events) >= 5, [e.message for e in events]
        assert {e.reporting_instance for e in events} == {driver}, name

    # Each driven run had its own operator's finalizer from its pick-up until it finished, and only that one:
    # never taken off by the other shard's operator (and put back), never the unsharded operator's.
    own = {"op-a": Shard("a").finalizer(FINALIZER), "op-b": Shard("b").finalizer(FINALIZER)}
    for name, (_, driver) in RUNS.items():
        if driver is not None:  # kopf takes it off in the cycle after the final status
            wait_for_run(k8s_api, k8s_namespace, name, lambda obj: not obj["metadata"].get("finalizers"), "release")
    finalizers.stop()
    for name, (_, driver) in RUNS.items():
        if driver is not None:
            seen = finalizers.lists[name]
            # From the create on when the watch was open in time (it lists what exists when it opens).
            from_pickup = seen[1:] if seen[:1] == [()] else seen
            assert from_pickup == [(own[driver],), ()], (name, seen)

    # The run of a shard nobody serves: untouched (no status, no finalizer, no Events) while the others finished.
    orphan = get_run(k8s_api, k8s_namespace, "in-c")
    assert "phase" not in orphan.get("status", {})
    assert not orphan["metadata"].get("finalizers")
    assert not run_events(k8s_api, k8s_namespace, "in-c")

    # Each run counted once over both operators: op-a counts in-a and unlabelled, op-b counts in-b.
    wait_for_counts(shard_operators, [2.0, 1.0])


def test_a_run_deleted_while_its_operator_was_replaced_by_shards_is_still_stepped_and_released(
    kube_cluster: KubeCluster, k8s_namespace: str, tmp_path: Path, sim: ThreadedSimulator, k8s_api: Any
) -> None:
    """The run holds the finalizer of an operator of every run, which is gone; it is deleted before any shard's
    operator put its own on. Kopf would never call the new operator's deletion handler for it (not its
    finalizer) and nobody would take the old one off: the run would stay Terminating, its session undriven."""
    before = OperatorProcess(kube_cluster, k8s_namespace, tmp_path, "op-all", lease_seconds=5).start()
    try:
        create_run(k8s_api, k8s_namespace, manifest("migrated", **{"session.duration": "30d"}))
        wait_for_run(k8s_api, k8s_namespace, "migrated", phase_is("Trading"), "Trading")
    finally:
        before.kill()
    runs = LiveRuns(k8s_api, k8s_namespace, sim)
    runs.delete("migrated")
    held = get_run(k8s_api, k8s_namespace, "migrated")
    assert held["metadata"]["finalizers"] == [FINALIZER] and held["metadata"].get("deletionTimestamp")

    after = OperatorProcess(
        kube_cluster, k8s_namespace, tmp_path, "op-a", lease_seconds=5, extra_args=("--shard", "a", "--default-shard")
    ).start()
    try:
        assert runs.wait_gone("migrated", 120), f"the run is still Terminating\n{after.log_tail()}"
    finally:
        after.stop()
    stepped = [e for e in run_events(k8s_api, k8s_namespace, "migrated") if e.reason == "PhaseChanged"]
    assert any(e.reporting_instance == "op-a" and message_of(e).startswith("Trading -> ") for e in stepped), [
        (e.reporting_instance, message_of(e)) for e in stepped
    ]

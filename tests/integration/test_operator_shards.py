"""Sharding on the real control plane: two `traiding operator` processes on disjoint shards of one namespace.

Each drives only the runs of its shard (the runs' Events name the operator that wrote them, their finalizer
is put by that operator only); the default shard also drives the runs without the label; a run labelled with a
shard no operator serves is left alone; and the runs by phase, summed over both operators' /metrics, count
each run once.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_plugin import KubeCluster
from tests.integration.live_operator import OperatorProcess
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from tests.integration.test_operator import (
    FINAL,
    create_run,
    get_run,
    manifest,
    phase_is,
    run_events,
    start_simulator,
    wait_for_run,
)
from tests.prometheus_server import free_port
from traiding_operator.shards import SHARD_LABEL
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


def test_two_operators_on_disjoint_shards_each_drive_only_their_own_runs(
    shard_operators: list[OperatorProcess], sim: ThreadedSimulator, k8s_api: Any, k8s_namespace: str
) -> None:
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

    # The run of a shard nobody serves: untouched (no status, no finalizer, no Events) while the others finished.
    orphan = get_run(k8s_api, k8s_namespace, "in-c")
    assert "phase" not in orphan.get("status", {})
    assert not orphan["metadata"].get("finalizers")
    assert not run_events(k8s_api, k8s_namespace, "in-c")

    # Each run counted once over both operators: op-a counts in-a and unlabelled, op-b counts in-b.
    wait_for_counts(shard_operators, [2.0, 1.0])

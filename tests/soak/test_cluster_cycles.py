"""`scripts/cluster up` / `down`, many times in a row, of both kinds: every cycle succeeds and leaves nothing.

Run apart from the rest of the suite (`pytest -m soak`, as scripts/test does): the real node's bridge and
address exist once per machine, so no other real-node cluster may run meanwhile. Each cycle runs the
documented commands as documented, in a state folder of its own, and after each `down` checks that no
process of the cluster is left (our binaries, containerd shims, Pods' processes), and for the real node
that its bridge, its iptables chains and its mounts are gone too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster_plugin import CLUSTER_SCRIPT, REPO

pytestmark = [pytest.mark.soak, pytest.mark.k8s]

SLEEP = str(Path(shutil.which("sleep") or "/bin/sleep").resolve())
CYCLES = int(os.environ.get("AI_TRAIDING_SOAK_CYCLES", "30"))


@pytest.fixture
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("soak-cluster")
    yield path
    subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "down"], env=_env(path), capture_output=True, check=False)


def _env(state: Path) -> dict[str, str]:
    return dict(os.environ, AI_TRAIDING_CLUSTER_DIR=str(state))


def _cluster(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLUSTER_SCRIPT), *args],
        env=_env(state),
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=300,
    )


def _leftovers(state: Path) -> list[str]:
    """Processes of this cluster: every component names its state folder in its arguments (containerd's
    shims name its socket there), and every container of a Pod lives in the kubelet's `kubepods` cgroup."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroups = (entry / "cgroup").read_text()
            state_char = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state_char != "Z" and (str(state) in cmdline or "/kubepods" in cgroups):
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def _node_traces(state: Path) -> list[str]:
    traces = []
    if subprocess.run(["ip", "link", "show", "aitr0"], capture_output=True, check=False).returncode == 0:
        traces.append("bridge aitr0")
    for tool in ("iptables-save", "ip6tables-save"):
        rules = subprocess.run([tool], capture_output=True, text=True, check=False).stdout
        traces += [f"{tool}: {line}" for line in rules.splitlines() if "KUBE-" in line or "CNI-" in line]
    mounts = Path("/proc/self/mounts").read_text()
    traces += [f"mount {line.split()[1]}" for line in mounts.splitlines() if str(state) in line]
    return traces


@pytest.mark.parametrize("kind", ["plain", "real-node"])
def test_up_down_cycles_succeed_and_leave_nothing(state_dir: Path, kind: str) -> None:
    args = ("--real-node",) if kind == "real-node" else ()
    times: list[tuple[float, float]] = []
    for cycle in range(1, CYCLES + 1):
        started = time.monotonic()
        up = _cluster(state_dir, "up", *args)
        up_s = time.monotonic() - started
        last = up.stdout.strip().splitlines()[-1:] or [""]
        assert up.returncode == 0 and last[0] == f"KUBECONFIG={state_dir / 'kubeconfig'}", (
            f"cycle {cycle}: `scripts/cluster up {' '.join(args)}` failed (exit {up.returncode}):\n{up.stderr[-4000:]}"
        )
        status = _cluster(state_dir, "status")
        assert status.returncode == 0, f"cycle {cycle}: not everything runs after up:\n{status.stdout}"
        started = time.monotonic()
        down = _cluster(state_dir, "down")
        times.append((up_s, time.monotonic() - started))
        assert down.returncode == 0, f"cycle {cycle}: down failed:\n{down.stderr[-4000:]}"
        assert _leftovers(state_dir) == [], f"cycle {cycle}: processes left after down"
        if kind == "real-node":
            assert _node_traces(state_dir) == [], f"cycle {cycle}: the real node left traces"
    ups, downs = sorted(t[0] for t in times), sorted(t[1] for t in times)
    print(
        f"\n{kind}: {CYCLES} cycles; up median {ups[len(ups) // 2]:.1f}s max {ups[-1]:.1f}s; "
        f"down median {downs[len(downs) // 2]:.1f}s max {downs[-1]:.1f}s"
    )


def _plant_owner(tmp_path: Path, pid: int, binary: str) -> Path:
    """Another state folder claiming the machine's real node, as `up --real-node` leaves it (pids/NAME.pid)."""
    other = tmp_path / "other-cluster"
    (other / "pids").mkdir(parents=True)
    (other / "pids" / "kubelet.pid").write_text(f"{pid} {binary}\n")
    owner = Path("/run/ai-traiding/real-node-owner")
    owner.parent.mkdir(parents=True, exist_ok=True)
    owner.write_text(f"{other}\n")
    return other


def test_a_real_node_claim_binds_only_while_its_components_run(state_dir: Path, tmp_path: Path) -> None:
    # A machine (a CI container) that stopped without `down` leaves the claim and pid files of dead processes.
    sleeper = subprocess.Popen([SLEEP, "600"])
    try:
        live = _plant_owner(tmp_path / "live", sleeper.pid, SLEEP)
        refused = _cluster(state_dir, "up", "--real-node")
        assert refused.returncode != 0
        assert f"a real node already runs from {live}" in refused.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    _plant_owner(tmp_path / "stale", sleeper.pid, SLEEP)
    up = _cluster(state_dir, "up", "--real-node")
    assert up.returncode == 0, up.stderr[-4000:]
    assert Path("/run/ai-traiding/real-node-owner").read_text().strip() == str(state_dir)
    assert _cluster(state_dir, "down").returncode == 0

"""pytest plugin: a real Kubernetes API server for tests marked ``k8s``.

Enable it with ``pytest_plugins = ["tests.cluster_plugin"]`` in the root
conftest. Fixtures:

``kube_cluster`` (session)
    A :class:`KubeCluster`. Which cluster is used, first match wins:

    1. ``AI_TRAIDING_TEST_KUBECONFIG`` — an existing cluster's kubeconfig;
    2. ``KUBECONFIG`` — e.g. a kind cluster in GitHub Actions, or the local
       control plane after ``eval "$(scripts/cluster env)"``;
    3. otherwise ``scripts/cluster up`` starts the local control plane (see
       docs/cluster.md), building it first on a cold machine.

    A cluster that this session started is stopped again at session end; one
    that was already running is left running.
``k8s_api`` (session)
    A ``kubernetes.client.ApiClient`` for that cluster (cluster-admin).
``k8s_namespace`` (function)
    A fresh namespace (its name), deleted after the test.
``real_node_cluster`` (session)
    A cluster whose Pods really run (``scripts/cluster up --real-node``: containerd,
    kubelet, kube-proxy, CoreDNS), in the state folder ``AI_TRAIDING_REAL_NODE_CLUSTER_DIR``
    (default ``~/.cache/ai-traiding/cluster-real-node``); stopped at session end if
    started here.

Set ``AI_TRAIDING_TEST_CLUSTER=local`` to ignore ``KUBECONFIG`` and always use
the local control plane.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO / "scripts" / "cluster"
K8S_BUILD_GO_MOD = REPO / "scripts" / "k8s-build" / "go.mod"


T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def pinned_kubernetes_version() -> str:
    """The Kubernetes version that scripts/k8s-build builds, e.g. ``v1.37.2``."""
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", K8S_BUILD_GO_MOD.read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no k8s.io/kubernetes version in {K8S_BUILD_GO_MOD}")
    return match.group(1)


@dataclass(frozen=True)
class KubeCluster:
    """A Kubernetes cluster the tests talk to."""

    kubeconfig: Path
    #: True when this is the control plane of scripts/cluster (whose version is pinned).
    local: bool
    #: True when this test session started it (and so stops it at the end).
    started_here: bool

    @property
    def expected_version(self) -> str | None:
        """The pinned gitVersion for the local control plane, None for others."""
        return pinned_kubernetes_version() if self.local else None

    def tool(self, name: str) -> str:
        """Path of ``kubectl``, ``helm``, ``actionlint``, ``kwok``...: the pinned build in the bin folder
        of scripts/cluster when it is there (never /usr/bin/kubectl then), else whatever PATH has."""
        built = tools_bin_dir() / name
        if os.access(built, os.X_OK):
            return str(built)
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} not found; run scripts/cluster install", pytrace=False)
        return found

    def env(self) -> dict[str, str]:
        """``os.environ`` with KUBECONFIG set to this cluster and the bin folder first on PATH."""
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        env["PATH"] = f"{tools_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
        return env


def tools_bin_dir() -> Path:
    """The versioned bin folder of scripts/cluster (AI_TRAIDING_BIN_DIR or the default)."""
    override = os.environ.get("AI_TRAIDING_BIN_DIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ai-traiding" / "bin" / f"k8s-{pinned_kubernetes_version()}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "k8s: needs a real Kubernetes API server (fixture kube_cluster; see docs/cluster.md)"
    )
    config.addinivalue_line(
        "markers", "real_node: needs Pods that really run (fixture real_node_cluster; see docs/cluster.md)"
    )


def _cluster(*args: str, capture: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLUSTER_SCRIPT), *args],
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
    )


def _local_state_kubeconfig() -> Path | None:
    status = _cluster("status", capture=True)
    for line in status.stdout.splitlines():
        if line.startswith("KUBECONFIG="):
            return Path(line.split("=", 1)[1])
    return None


def _up(config: pytest.Config, args: tuple[str, ...], env: dict[str, str] | None) -> tuple[int, str, str]:
    """Run ``scripts/cluster up``, showing its progress on the terminal (a cold machine builds first)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    shown = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
    tail: collections.deque[str] = collections.deque(maxlen=80)
    with shown:
        print(
            f"\n[cluster_plugin] scripts/cluster up {' '.join(args)} (builds first on a cold machine)", file=sys.stderr
        )
        proc = subprocess.Popen(
            [sys.executable, str(CLUSTER_SCRIPT), "up", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line)
        out = proc.stdout.read()
        returncode = proc.wait()
    return returncode, out, "".join(tail)


@contextlib.contextmanager
def _started_cluster(config: pytest.Config, *args: str, env: dict[str, str] | None = None) -> Iterator[KubeCluster]:
    """``scripts/cluster up ARGS`` for the session, and ``down`` at its end if the session started it."""
    was_running = _cluster("status", env=env).returncode == 0
    returncode, out, err = _up(config, args, env)
    lines = out.strip().splitlines()
    if returncode != 0 or not lines or not lines[-1].startswith("KUBECONFIG="):
        pytest.fail(f"`scripts/cluster up {' '.join(args)}` failed (exit {returncode}):\n{err}\n{out}", pytrace=False)
    cluster = KubeCluster(kubeconfig=Path(lines[-1].split("=", 1)[1]), local=True, started_here=not was_running)
    try:
        yield cluster
    finally:
        if cluster.started_here:
            down = _cluster("down", env=env)
            if down.returncode != 0:
                print(f"`scripts/cluster down` failed:\n{down.stderr}", file=sys.stderr)


@pytest.fixture(scope="session")
def kube_cluster(pytestconfig: pytest.Config) -> Iterator[KubeCluster]:
    given = os.environ.get("AI_TRAIDING_TEST_KUBECONFIG")
    if not given and os.environ.get("AI_TRAIDING_TEST_CLUSTER") != "local":
        given = os.environ.get("KUBECONFIG")
    if given:
        path = Path(given.split(os.pathsep)[0]).expanduser()
        if not path.is_file():
            pytest.fail(f"kubeconfig {path} (from the environment) does not exist", pytrace=False)
        local = path.resolve() == (_local_state_kubeconfig() or Path("/nonexistent")).resolve()
        yield KubeCluster(kubeconfig=path, local=local, started_here=False)
        return
    with _started_cluster(pytestconfig) as cluster:
        yield cluster


def real_node_state_dir() -> Path:
    """The state folder of the real-node cluster the tests start (apart from the plain cluster's)."""
    override = os.environ.get("AI_TRAIDING_REAL_NODE_CLUSTER_DIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ai-traiding" / "cluster-real-node"


@pytest.fixture(scope="session")
def real_node_cluster(pytestconfig: pytest.Config) -> Iterator[KubeCluster]:
    """A cluster whose Pods really run: ``scripts/cluster up --real-node`` in its own state folder
    (see docs/cluster.md), beside the plain cluster of :func:`kube_cluster`."""
    env = dict(os.environ, AI_TRAIDING_CLUSTER_DIR=str(real_node_state_dir()))
    with _started_cluster(pytestconfig, "--real-node", env=env) as cluster:
        yield cluster


def _api_client(cluster: KubeCluster) -> Iterator[ApiClient]:
    from kubernetes import config  # noqa: PLC0415 - only tests marked k8s need the client

    client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig)
    )
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def k8s_api(kube_cluster: KubeCluster) -> Iterator[ApiClient]:
    """``kubernetes.client.ApiClient`` for :func:`kube_cluster`."""
    yield from _api_client(kube_cluster)


@pytest.fixture(scope="session")
def real_node_api(real_node_cluster: KubeCluster) -> Iterator[ApiClient]:
    """``kubernetes.client.ApiClient`` for :func:`real_node_cluster`."""
    yield from _api_client(real_node_cluster)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:30].strip("-") or "test"


def _namespace(api: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    core = client.CoreV1Api(api)
    name = f"t-{_slug(request.node.name)}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"ai-traiding/test": "true"}))
    )
    # Pods are only admitted once the ServiceAccount controller made `default`.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as err:
            if err.status != 404:
                raise
            time.sleep(0.2)
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise


@pytest.fixture
def k8s_namespace(k8s_api: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists; deleted afterwards."""
    yield from _namespace(k8s_api, request)


@pytest.fixture
def real_node_namespace(real_node_api: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace on the real-node cluster; deleted afterwards."""
    yield from _namespace(real_node_api, request)

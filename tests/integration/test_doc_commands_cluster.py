"""The `kubectl` and `helm` commands of the README and docs/, run as written against the real control plane.

Each document's commands run in its order, in a namespace of its own. The documents' namespace (`-n trading`)
and placeholders (NS, NAME, run.yaml) become the test's namespace, the example's run name and its manifest;
commands without a namespace run in the kubeconfig context's, set to the test's. The CRD and the example's run
exist first, as they do for a reader (troubleshooting starts from a run). A second `helm install` of a release
is another section's way to install: the release is uninstalled before it. A watch (`-w`) runs until it has
printed its table's header. Not run here: `kubectl logs` (kwok's Pods print nothing; the unit test checks
that the Deployment it names is the chart's) and commands outside the cluster (make, docker, curl).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster_plugin import REPO, KubeCluster, tools_bin_dir
from tests.doc_commands import DocCommand, doc_commands

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

EXAMPLE_NAME = "eth-sma-dry"
RUN_MANIFEST = "examples/dry-run.yaml"
CLUSTER_PROGRAMS = ("kubectl", "helm")


def cluster_commands(document: str) -> list[DocCommand]:
    return [
        c
        for c in doc_commands()
        if c.document == document and c.argv[0] in CLUSTER_PROGRAMS and "logs" not in c.argv[:4]
    ]


DOCUMENTS = sorted({c.document for c in doc_commands() if c.argv[0] in CLUSTER_PROGRAMS})


def substituted(argv: tuple[str, ...], namespace: str) -> list[str]:
    replacements = {"trading": namespace, "NS": namespace, "NAME": EXAMPLE_NAME, "run.yaml": RUN_MANIFEST}
    return [replacements.get(word, word) for word in argv]


@pytest.fixture
def context(kube_cluster: KubeCluster, k8s_namespace: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment whose kubeconfig's context namespace is the test's, with the pinned kubectl and helm."""
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(kube_cluster.kubeconfig, kubeconfig)
    env = dict(
        os.environ,
        KUBECONFIG=str(kubeconfig),
        PATH=f"{tools_bin_dir()}{os.pathsep}{os.environ['PATH']}",
        HELM_CACHE_HOME=str(tmp_path / "helm-cache"),
        HELM_CONFIG_HOME=str(tmp_path / "helm-config"),
    )
    subprocess.run(
        ["kubectl", "config", "set-context", "--current", f"--namespace={k8s_namespace}"], env=env, check=True
    )
    # What a reader of the docs has: the CRD (the chart's) and a run (troubleshooting starts from one).
    for manifest in ("crds/tradingrun.yaml", RUN_MANIFEST):
        subprocess.run(["kubectl", "apply", "-f", manifest], cwd=REPO, env=env, check=True, capture_output=True)
    yield env
    subprocess.run(["helm", "uninstall", "ai-traiding", "-n", k8s_namespace], env=env, capture_output=True, check=False)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_cluster_commands_of_a_document_run_as_written(
    document: str, context: dict[str, str], k8s_namespace: str
) -> None:
    commands = cluster_commands(document)
    assert commands, f"{document} shows no cluster command"
    installed = False
    for command in commands:
        argv = substituted(command.argv, k8s_namespace)
        if "-w" in argv or "--watch" in argv:
            with subprocess.Popen(
                argv, cwd=REPO, env=context, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ) as watch:
                assert watch.stdout is not None
                header = watch.stdout.readline()
                watch.terminate()
            assert header.split()[:2] == ["NAME", "PHASE"], f"{command.where}: {header!r}"
            continue
        if argv[:2] == ["helm", "install"]:
            if installed:
                subprocess.run(["helm", "uninstall", argv[2], "-n", k8s_namespace], env=context, check=True)
            installed = True
        done = subprocess.run(argv, cwd=REPO, env=context, capture_output=True, text=True, check=False, timeout=300)
        assert done.returncode == 0, f"{command.where}\n(run as {' '.join(argv)})\n{done.stderr[-2000:]}"

"""The `kubectl` and `helm` commands of the README and docs/, run as written against the real control plane.

Each document's commands run in its order, in a namespace of its own. The documents' namespace (`-n trading`)
and placeholders (NS, NAME, run.yaml) become the test's namespace, the example's run name and its manifest;
commands without a namespace run in the kubeconfig context's, set to the test's. The CRD and the example's run
exist first, as they do for a reader (troubleshooting starts from a run). A second `helm install` of a release
is another section's way to install: the release is uninstalled before it. A watch (`-w`) runs until it has
printed its table's header. Not run here: `kubectl logs` (kwok's Pods print nothing; the unit test checks
that the Deployment it names is the chart's), approvals (they take an approver's identity and a run waiting at
its gate: tests/integration/test_security.py approves as documented) and commands outside the cluster (make,
docker, curl).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster_plugin import REPO, KubeCluster, tools_bin_dir
from tests.doc_commands import DocCommand, doc_commands, program

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

EXAMPLE_NAME = "eth-sma-dry"
KILL_SWITCH_GROUP = "traiding-approvers"  # the chart's default admissionPolicy group
RUN_MANIFEST = "examples/dry-run.yaml"
CLUSTER_PROGRAMS = ("kubectl", "helm")


def in_sequence(command: DocCommand) -> bool:
    """The cluster's commands, and the local ones between them that make what they apply (`traiding keys`)."""
    if program(command) == "traiding":
        return command.argv[1] == "keys"
    approval = any(word.startswith("traiding.io/approved-by=") for word in command.argv)
    return command.argv[0] in CLUSTER_PROGRAMS and "logs" not in command.argv[:4] and not approval


def cluster_commands(document: str) -> list[DocCommand]:
    return [c for c in doc_commands() if c.document == document and in_sequence(c)]


DOCUMENTS = sorted({c.document for c in doc_commands() if c.argv[0] in CLUSTER_PROGRAMS})


def replacements(namespace: str) -> dict[str, str]:
    return {"trading": namespace, "NS": namespace, "NAME": EXAMPLE_NAME, "run.yaml": RUN_MANIFEST}


def substituted(argv: tuple[str, ...], namespace: str) -> list[str]:
    """The words with the documents' namespace and placeholders replaced (see module doc)."""
    return [replacements(namespace).get(word, word) for word in argv]


def substituted_line(raw: str, namespace: str) -> str:
    """The line as written, for the shell, with the same words replaced."""
    for word, value in replacements(namespace).items():
        raw = re.sub(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", value, raw)
    return raw


@pytest.fixture
def context(kube_cluster: KubeCluster, k8s_namespace: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment whose kubeconfig's context namespace is the test's, with the pinned kubectl and helm and
    this checkout's traiding on PATH, in a working folder that sees the repository's files (what a reader has
    in a clone) and takes the files a command writes (`traiding keys generate > keys.txt`)."""
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(kube_cluster.kubeconfig, kubeconfig)
    work = tmp_path / "clone"
    work.mkdir()
    for entry in REPO.iterdir():
        if entry.name != ".git":
            (work / entry.name).symlink_to(entry)
    env = dict(
        os.environ,
        KUBECONFIG=str(kubeconfig),
        PATH=f"{tools_bin_dir()}{os.pathsep}{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        HELM_CACHE_HOME=str(tmp_path / "helm-cache"),
        HELM_CONFIG_HOME=str(tmp_path / "helm-config"),
        DOC_WORK=str(work),
    )
    subprocess.run(
        ["kubectl", "config", "set-context", "--current", f"--namespace={k8s_namespace}"], env=env, check=True
    )
    # The kill switch's commands run as a member of its group (the chart's admission policy allows no one
    # else; system:masters stands in for its RBAC): the identity is the kubeconfig's, the commands as written.
    approver = yaml.safe_load(kubeconfig.read_text())
    for user in approver["users"]:
        user["user"].update({"as": "doc-reader", "as-groups": [KILL_SWITCH_GROUP, "system:masters"]})
    (tmp_path / "kubeconfig-approver").write_text(yaml.safe_dump(approver))
    env["APPROVER_KUBECONFIG"] = str(tmp_path / "kubeconfig-approver")
    # What a reader of the docs has: the CRD (the chart's) and a run (troubleshooting starts from one).
    for manifest in ("crds/tradingrun.yaml", RUN_MANIFEST):
        subprocess.run(["kubectl", "apply", "-f", manifest], cwd=work, env=env, check=True, capture_output=True)
    yield env
    subprocess.run(["helm", "uninstall", "ai-traiding", "-n", k8s_namespace], env=env, capture_output=True, check=False)


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_cluster_commands_of_a_document_run_as_written(
    document: str, context: dict[str, str], k8s_namespace: str
) -> None:
    commands = cluster_commands(document)
    assert commands, f"{document} shows no cluster command"
    installed = False
    work = context["DOC_WORK"]
    for command in commands:
        argv = substituted(command.argv, k8s_namespace)
        if "-w" in argv or "--watch" in argv:
            with subprocess.Popen(
                argv, cwd=work, env=context, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
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
        line = substituted_line(command.raw, k8s_namespace)
        as_approver = "traiding-kill-switch" in command.argv and command.argv[-1] != "traiding-kill-switch"
        env = {**context, "KUBECONFIG": context["APPROVER_KUBECONFIG"]} if as_approver else context
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", line],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, f"{command.where}\n(run as {line})\n{done.stderr[-2000:]}"

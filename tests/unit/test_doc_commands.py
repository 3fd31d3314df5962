"""Every command the README and docs/ show is one that exists, as written: `traiding` commands parse with
the real argument parser (and the local ones run), `make` targets and `scripts/cluster` subcommands exist,
the repository paths they name are there, and the objects they name are the chart's. The `kubectl` commands
run against a real control plane in tests/integration/test_doc_commands_cluster.py."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.cluster_plugin import tools_bin_dir
from tests.doc_commands import REPO, DocCommand, doc_commands, program
from traiding.cli import build_parser

COMMANDS = doc_commands()
TRAIDING = [c for c in COMMANDS if program(c) == "traiding"]
# Quick, local and self-contained: run as documented (`traiding run` is `make run`'s test, tests/integration).
RUNNABLE = ("backtest", "crd", "slo")
REPO_PATH = re.compile(r"^(examples|helm|crds|docs|scripts|benchmarks)/")


def by_id(commands: list[DocCommand]) -> list[object]:
    return [pytest.param(c, id=c.where[:90]) for c in commands]


def test_the_docs_show_commands_of_every_kind() -> None:
    programs = {program(c) for c in COMMANDS}
    assert {"traiding", "make", "scripts/cluster", "kubectl", "helm"} <= programs
    assert len(TRAIDING) >= 5


@pytest.mark.parametrize("command", by_id(TRAIDING))
def test_a_documented_traiding_command_parses(command: DocCommand) -> None:
    argv = list(command.argv[1:])
    parser, selected = build_parser(argv)
    assert selected is not None, f"{command.where}: no such subcommand"
    try:
        parser.parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{command.where}: the parser refuses it (exit {exit_.code})")


@pytest.mark.parametrize(
    "command",
    by_id([c for c in TRAIDING if c.argv[1] in RUNNABLE and not any(a.startswith("~") for a in c.argv)]),
)
def test_a_documented_local_traiding_command_runs(command: DocCommand) -> None:
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "traiding"), *command.argv[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, f"{command.where}\n{done.stderr[-2000:]}"
    assert done.stdout.strip()


def test_documented_make_targets_exist() -> None:
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    documented = {c.argv[1] for c in COMMANDS if c.argv[0] == "make" and len(c.argv) > 1}
    assert documented, "no make command in the docs"
    assert documented <= targets, f"not in the Makefile: {sorted(documented - targets)}"


def test_documented_cluster_subcommands_exist() -> None:
    usage = subprocess.run(
        [str(REPO / "scripts" / "cluster"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    offered = set(re.search(r"Usage: scripts/cluster \{(.*?)\}", usage).group(1).replace("|", " ").split())  # type: ignore[union-attr]
    documented = {c.argv[1] for c in COMMANDS if c.argv[0] == "scripts/cluster"}
    assert documented <= offered, f"scripts/cluster has no {sorted(documented - offered)}"


@pytest.mark.parametrize("command", by_id([c for c in COMMANDS if any(REPO_PATH.match(a) for a in c.argv)]))
def test_repository_paths_in_documented_commands_exist(command: DocCommand) -> None:
    missing = [a for a in command.argv if REPO_PATH.match(a) and not (REPO / a).exists()]
    assert missing == [], f"{command.where}: no such file {missing}"


def test_objects_named_in_documented_commands_are_the_charts() -> None:
    """`kubectl logs deploy/NAME` and the like name what `helm install ai-traiding helm/ai-traiding` creates."""
    rendered = subprocess.run(
        [
            str(tools_bin_dir() / "helm"),
            "template",
            "ai-traiding",
            str(REPO / "helm" / "ai-traiding"),
            "--kube-version",
            "1.37.2",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    kinds = {"deploy": "Deployment", "deployment": "Deployment", "svc": "Service", "cronjob": "CronJob"}
    names = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(rendered.stdout) if d}
    named = [
        (c, kinds[ref.split("/")[0]], ref.split("/", 1)[1])
        for c in COMMANDS
        if c.argv[0] == "kubectl"
        for ref in c.argv
        if "/" in ref and ref.split("/")[0] in kinds
    ]
    assert named, "no kubectl command of the docs names a chart object"
    wrong = [f"{c.where} ({kind} {name})" for c, kind, name in named if (kind, name) not in names]
    assert wrong == [], f"not objects of the chart: {wrong}"

"""The editor set-up (.vscode/): each task and debug configuration names something that exists and answers
`--help`; every module a debug configuration launches is importable."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VSCODE = REPO / ".vscode"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VSCODE / name).read_text())
    return data


TASKS = load("tasks.json")["tasks"]
LAUNCHES = load("launch.json")["configurations"]


def test_the_tasks_cover_what_a_developer_runs() -> None:
    labels = " ".join(task["label"] for task in TASKS)
    for wanted in ("make test", "unit tests", "cluster: up", "real node", "cluster: down", "operator", "dry run",
                   "lint", "benchmarks", "e2e"):  # fmt: skip
        assert wanted in labels, wanted


@pytest.mark.parametrize("task", TASKS, ids=[task["label"] for task in TASKS])
def test_each_task_runs_a_command_that_exists_and_answers_help(task: dict[str, Any]) -> None:
    command = task["command"]
    executable = REPO / command if "/" in command else shutil.which(command)
    assert executable is not None and Path(executable).exists(), f"{task['label']}: {command} not found"
    args = [a for a in task.get("args", []) if "${" not in a]
    if command == "make":
        # `make --help` says nothing of the target: ask make whether the target exists (a dry run).
        dry = subprocess.run(["make", "-n", *args[:1]], cwd=REPO, capture_output=True, text=True, check=False)
        assert dry.returncode == 0, dry.stderr
        return
    script = [a for a in args if a.endswith(".py")]  # `python benchmarks/x.py`: the script answers --help
    # `traiding SUBCOMMAND --help` for the command with subcommands, `COMMAND --help` for the others.
    help_args = [*script, "--help"] if script else ([args[0], "--help"] if command.endswith("traiding") else ["--help"])
    result = subprocess.run([str(executable), *help_args], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{task['label']}: {command} {' '.join(help_args)}: {result.stderr[-500:]}"


@pytest.mark.parametrize("launch", LAUNCHES, ids=[launch["name"] for launch in LAUNCHES])
def test_each_debug_configuration_launches_an_importable_module_that_answers_help(launch: dict[str, Any]) -> None:
    assert importlib.util.find_spec(launch["module"]) is not None
    python = launch["python"].replace("${workspaceFolder}", str(REPO))
    args = [a for a in launch["args"] if "${" not in a]
    help_args = ["--help"] if launch["module"] == "pytest" else [args[0], "--help"]
    result = subprocess.run(
        [python, "-m", launch["module"], *help_args], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-500:]

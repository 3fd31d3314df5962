"""The GitHub workflows: actionlint (with shellcheck on their scripts) is clean, and what they call exists."""

from __future__ import annotations

import re
import shutil
import subprocess

import yaml

from tests.cluster_plugin import REPO, tools_bin_dir

WORKFLOWS = REPO / ".github" / "workflows"


def test_actionlint_is_clean_with_shellcheck() -> None:
    assert shutil.which("shellcheck"), "shellcheck is installed by scripts/cluster install"
    result = subprocess.run(
        [str(tools_bin_dir() / "actionlint")], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflows_exist_and_call_what_the_repository_has() -> None:
    names = sorted(p.stem for p in WORKFLOWS.glob("*.yml"))
    assert names == ["ci", "e2e", "nightly", "release"]
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M))
    for path in WORKFLOWS.glob("*.yml"):
        workflow = yaml.safe_load(path.read_text())
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                for command in re.findall(r"\bmake ([a-z][a-z0-9 -]*)", step.get("run", "")):
                    assert set(command.split()) <= targets, f"{path.name}: make {command}"
                for script in re.findall(r"\b(scripts/[a-z0-9_-]+)", step.get("run", "")):
                    assert (REPO / script).is_file(), f"{path.name}: {script}"


def test_the_nightly_workflow_runs_at_two_utc_and_opens_an_issue_on_failure() -> None:
    nightly = yaml.safe_load((WORKFLOWS / "nightly.yml").read_text())
    triggers = nightly[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["schedule"] == [{"cron": "0 2 * * *"}]
    report = nightly["jobs"]["report-failure"]
    assert report["if"] == "failure()" and "gh issue create" in report["steps"][0]["run"]

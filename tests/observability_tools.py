"""Where the observability tools are: promtool, prometheus and amtool (Debian packages prometheus and
prometheus-alertmanager, installed by `scripts/observability-tools`, which `make test` runs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHART_FILES = REPO / "helm" / "ai-traiding" / "files"
RULES_FILE = CHART_FILES / "prometheusrule-spec.yaml"
DASHBOARD_FILE = CHART_FILES / "dashboard.json"
ALERTMANAGER_EXAMPLE = REPO / "examples" / "monitoring" / "alertmanager.yaml"


def tool(name: str) -> str:
    """The tool's path; a clear failure (not a skip) when missing: `make test` installs it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: run scripts/observability-tools (make test does)", pytrace=False)
    return path


def run_tool(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False)

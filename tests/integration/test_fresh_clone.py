"""The README's main job as a newcomer meets it: `make run` on a fresh copy of the repository, with no ../shared
beside it, exactly as the README writes it. And `pip install` users get the bundled candles too.

`make run` sets up its own .venv from PyPI (pip's cache keeps that reasonably fast), so this test executes the
copy's code and its Makefile, not this checkout's environment.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.shell_env import user_shell_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files a clone has (`git ls-files`, plus new ones not yet committed), copied to a folder of its own."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    clone = tmp_path_factory.mktemp("newcomer") / "ai-traiding"
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted in the work tree but not yet in git is gone from a clone too
            target = clone / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (clone.parent / "shared").exists()
    return clone


def test_the_readme_says_make_run_is_the_way_to_run() -> None:
    assert re.search(r"^make run\s+#", (REPO / "README.md").read_text(), re.MULTILINE)


@pytest.mark.slow
def test_make_run_succeeds_on_a_fresh_clone_without_shared_data(fresh_clone: Path) -> None:
    done = subprocess.run(
        ["make", "run"],
        cwd=fresh_clone,
        env=user_shell_env(),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Succeeded" in done.stderr
    assert "[5/5] Reporting" in done.stderr  # five steps for a dry run, none skipped
    summary = json.loads((fresh_clone / "out" / "dry-run" / "summary.json").read_text())
    assert summary["phase"] == "Succeeded" and summary["equity"] is not None
    assert set(summary["phases"]) == {"DataCheck", "Backtest", "ApiCheck", "Trading", "Reporting"}
    report = (fresh_clone / "out" / "dry-run" / "report.html").read_text()
    assert "Succeeded" in report and '<table class="gates">' in report
    assert "http-equiv" not in report  # the final report no longer reloads itself
    events = (fresh_clone / "out" / "dry-run" / "events.jsonl").read_text()
    assert "replaying bundled candles (ETH_USDT-5m, ETH_USDT-1h)" in events


@pytest.mark.slow
def test_a_wheel_carries_the_bundled_candles(fresh_clone: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(fresh_clone)],
        env=user_shell_env(),
        check=True,
        timeout=600,
    )
    [wheel] = tmp_path.glob("ai_traiding-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {p.name for p in (REPO / "traiding" / "data" / "candles").iterdir()}
    assert {"BTC_USDT-5m.json.gz", "ETH_USDT-5m.json.gz", "BTC_USDT-1h.json.gz", "README.md"} <= bundled
    assert {f"traiding/data/candles/{name}" for name in bundled} <= names

"""What the image is built from: the committed lock (uv.lock) matches pyproject.toml, and the image's
requirements file is exactly the lock's export (so a stale lock or a hand-edited pin fails here)."""

from __future__ import annotations

import subprocess

from tests.cluster_plugin import REPO

UV = REPO / ".venv" / "bin" / "uv"
EXPORT = ("export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt")
OPERATOR_REQUIREMENTS = REPO / "requirements" / "operator.txt"


def strip(text: str) -> list[str]:
    """The lines but comments: uv writes its own command line as one; everything else must be identical."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_the_lock_is_current_with_pyproject() -> None:
    result = subprocess.run([str(UV), "lock", "--check"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"uv.lock is stale: run `uv lock` and commit it\n{result.stderr}"


def test_the_image_requirements_are_the_locks_export() -> None:
    exported = subprocess.run(
        [str(UV), *EXPORT, "--quiet"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    committed = OPERATOR_REQUIREMENTS.read_text()
    assert strip(exported) == strip(committed), (
        "requirements/operator.txt is not the export of uv.lock: run "
        "`uv export --frozen --no-dev --no-emit-project --format requirements-txt -o requirements/operator.txt`"
    )
    # Every pin carries hashes: the image installs with --require-hashes.
    pins = [line for line in strip(committed) if "==" in line]
    assert pins and all(line.rstrip().endswith("\\") for line in pins)

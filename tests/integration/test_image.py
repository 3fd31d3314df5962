"""The operator image, built here as the README says (`make image`) on the local Docker engine: non-root,
read-only root filesystem, the example's dry run inside it, labels and entrypoint, hadolint clean."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster_plugin import REPO
from tests.shell_env import user_shell_env

sys.path.insert(0, str(REPO / "scripts"))
import docker_engine

pytestmark = [pytest.mark.docker, pytest.mark.slow]

VERSION = (REPO / "VERSION").read_text().strip()
TAG = f"ai-traiding:{VERSION}"
# As the chart runs it: a read-only root filesystem with /tmp writable.
READ_ONLY_RUN = ("docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp")
DRY_RUN = ("run", "examples/dry-run.yaml", "-o", "/tmp/out", "--quiet")


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    with docker_engine.engine():
        built = subprocess.run(
            ["make", "image"], cwd=REPO, env=user_shell_env(), capture_output=True, text=True, check=False
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        assert built.stdout.strip().splitlines()[-1] == TAG
        yield TAG


def inspect(image: str) -> dict[str, Any]:
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=True).stdout
    data: list[dict[str, Any]] = json.loads(out)
    return data[0]


def test_image_runs_the_operator_as_65532_with_oci_labels(image: str) -> None:
    config = inspect(image)["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["traiding", "operator"]
    assert config["Labels"]["org.opencontainers.image.version"] == VERSION
    assert config["Labels"]["org.opencontainers.image.title"] == "ai-traiding"
    whoami = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", image, "-u"], capture_output=True, text=True, check=True
    )
    assert whoami.stdout.strip() == "65532"


def test_the_examples_dry_run_succeeds_in_the_read_only_image(image: str) -> None:
    run = subprocess.run(
        [*READ_ONLY_RUN, "--network", "none", "--entrypoint", "traiding", image, *DRY_RUN],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1].startswith("Succeeded")


def test_the_root_filesystem_is_not_writable_in_the_container(image: str) -> None:
    probe = subprocess.run(
        [*READ_ONLY_RUN, "--entrypoint", "python3", image, "-c", "open('/app/x', 'w')"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "hadolint"), str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

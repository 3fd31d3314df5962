"""The release command, `make release PART=...` as documented, on a throwaway clone: every file that states the
version moves with VERSION, the CHANGELOG gets a dated section, RELEASE_NOTES.md is written, and the release
is one commit with its tag. And in this repository: the version is stated the same everywhere."""

from __future__ import annotations

import hashlib
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import yaml

from tests.cluster_plugin import REPO
from tests.shell_env import user_shell_env
from traiding import __version__
from traiding.crd import build_crd

CHART = REPO / "helm" / "ai-traiding"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def stated_versions(root: Path) -> dict[str, str]:
    chart = yaml.safe_load((root / "helm" / "ai-traiding" / "Chart.yaml").read_text())
    crds = {
        path: yaml.safe_load((root / path).read_text())["metadata"]["labels"]["app.kubernetes.io/version"]
        for path in ("crds/tradingrun.yaml", "helm/ai-traiding/crds/tradingrun.yaml")
    }
    return {
        "VERSION": (root / "VERSION").read_text().strip(),
        "Chart.yaml version": str(chart["version"]),
        "Chart.yaml appVersion": str(chart["appVersion"]),
        ".bumpversion.toml": re.search(r'current_version = "([^"]+)"', (root / ".bumpversion.toml").read_text())[1],  # type: ignore[index]
        **{f"{path} label": str(version) for path, version in crds.items()},
    }


def test_the_version_is_stated_the_same_everywhere() -> None:
    versions = stated_versions(REPO)
    assert set(versions.values()) == {__version__}, versions
    assert build_crd()["metadata"]["labels"]["app.kubernetes.io/version"] == __version__
    import importlib.machinery  # noqa: PLC0415 - the image tag comes from scripts/image
    import importlib.util  # noqa: PLC0415

    loader = importlib.machinery.SourceFileLoader("image_script", str(REPO / "scripts" / "image"))
    spec = importlib.util.spec_from_loader("image_script", loader)
    assert spec is not None
    image = importlib.util.module_from_spec(spec)
    loader.exec_module(image)
    assert image.operator_tag() == f"ai-traiding:{__version__}"


def test_make_release_bumps_every_file_dates_the_changelog_writes_notes_and_tags(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    git(clone, "config", "user.email", "release-test@example.com")
    git(clone, "config", "user.name", "Release Test")
    before = (clone / "VERSION").read_text().strip()
    major, minor, _ = (int(p) for p in before.split("."))
    expected = f"{major}.{minor + 1}.0"
    unreleased = (clone / "CHANGELOG.md").read_text().split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]

    # As documented. The clone borrows this repository's bump-my-version: a .venv holding just that and the
    # Makefile's set-up stamp, so `make release` does not install anything (nor touch this .venv).
    stamp = f".installed-{before}-{hashlib.sha1((clone / 'pyproject.toml').read_bytes()).hexdigest()[:12]}"
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / stamp).touch()
    (clone / ".venv" / "bin" / "bump-my-version").symlink_to(REPO / ".venv" / "bin" / "bump-my-version")
    release = subprocess.run(
        ["make", "release", "PART=minor"],
        cwd=clone,
        env=user_shell_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert release.returncode == 0, release.stdout + release.stderr

    assert set(stated_versions(clone).values()) == {expected}
    changelog = (clone / "CHANGELOG.md").read_text()
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert f"## [Unreleased]\n\n## [{expected}] - {today}\n" in changelog
    assert changelog.split(f"## [{expected}] - {today}", 1)[1].split("\n## [", 1)[0] == unreleased
    notes = (clone / "RELEASE_NOTES.md").read_text()
    assert notes.startswith(f"# ai-traiding {expected} ({today})")
    first_added = unreleased.split("### Added\n", 1)[1].split("\n- ", 1)[0].strip()
    assert first_added in notes  # the highlights are the release's Added entries
    assert "## CRD changes" in notes and "The first release" in notes  # no earlier tag in this history
    assert not re.search(r"\$(version|date|highlights|upgrade_notes|crd_changes|fixes)\b", notes)
    assert git(clone, "status", "--porcelain") == ""
    assert git(clone, "log", "-1", "--format=%s") == f"Release {expected}"
    assert git(clone, "describe", "--exact-match", "--tags", "HEAD") == f"v{expected}"
    changed = set(git(clone, "diff", "--name-only", "HEAD~1", "HEAD").splitlines())
    assert changed == {
        "VERSION",
        "CHANGELOG.md",
        "RELEASE_NOTES.md",
        ".bumpversion.toml",
        "crds/tradingrun.yaml",
        "helm/ai-traiding/Chart.yaml",
        "helm/ai-traiding/crds/tradingrun.yaml",
    }

"""RELEASE_NOTES.md for the release being made: the release's CHANGELOG section in the template
docs/release-notes-template.md (highlights, upgrade notes, CRD changes, fixes).

Run by bump-my-version before its release commit (a pre-commit hook; it passes the versions in
BVHOOK_NEW_VERSION and BVHOOK_CURRENT_VERSION), or by hand: `python3 scripts/release_notes.py NEW [PREVIOUS]`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from string import Template

REPO = Path(__file__).resolve().parent.parent
CRD = "crds/tradingrun.yaml"
UPGRADE_SECTIONS = ("Changed", "Deprecated", "Removed", "Security")


def section(changelog: str, version: str) -> tuple[str, dict[str, str]]:
    """The release's date and its `### Kind` parts, from `## [version] - date` to the next `## [`."""
    match = re.search(rf"^## \[{re.escape(version)}\] - (\S+)\n(.*?)(?=^## \[|\Z)", changelog, re.M | re.S)
    if match is None:
        raise SystemExit(f"release_notes: CHANGELOG.md has no section for {version}")
    parts: dict[str, str] = {}
    for kind, body in re.findall(r"^### (\w+)\n(.*?)(?=^### |\Z)", match.group(2), re.M | re.S):
        parts[kind] = body.strip()
    return match.group(1), parts


def crd_changes(previous: str | None) -> str:
    """What changed in the CRD's schema since the previous release's tag."""
    if previous is None or subprocess.run(["git", "rev-parse", "-q", "--verify", f"v{previous}"], cwd=REPO,
                                          capture_output=True, check=False).returncode != 0:  # fmt: skip
        return "The first release: the CRD `tradingruns.traiding.io` (`traiding.io/v1alpha1`) is new."
    diff = subprocess.run(
        ["git", "diff", "--unified=0", f"v{previous}", "--", CRD], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    schema = [line for line in changed if "app.kubernetes.io/version" not in line]
    if not schema:
        return f"None: the schema is as in {previous} (only the CRD's version label moved)."
    added = sum(1 for line in schema if line.startswith("+"))
    return (
        f"The schema changed since {previous} ({added} lines added, {len(schema) - added} removed): see "
        f"`git diff v{previous} -- {CRD}`; apply the new CRD before upgrading the chart."
    )


def render(version: str, previous: str | None) -> str:
    date, parts = section((REPO / "CHANGELOG.md").read_text(), version)
    upgrade = "\n".join(parts[k] for k in UPGRADE_SECTIONS if k in parts)
    template = Template((REPO / "docs" / "release-notes-template.md").read_text())
    return template.substitute(
        version=version,
        date=date,
        highlights=parts.get("Added") or "No new features in this release.",
        upgrade_notes=upgrade or "Nothing to do beyond the usual upgrade.",
        crd_changes=crd_changes(previous),
        fixes=parts.get("Fixed") or "No fixes in this release.",
    )


def main(argv: list[str]) -> int:
    version = argv[1] if len(argv) > 1 else os.environ.get("BVHOOK_NEW_VERSION")
    previous = argv[2] if len(argv) > 2 else os.environ.get("BVHOOK_CURRENT_VERSION")
    if not version:
        print(__doc__, file=sys.stderr)
        return 2
    (REPO / "RELEASE_NOTES.md").write_text(render(version, previous))
    print(f"release_notes: RELEASE_NOTES.md for {version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

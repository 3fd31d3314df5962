"""Debian packages the scripts install for themselves (CI and a new session start on a clean machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


class AptError(RuntimeError):
    """apt-get could not install what was asked; apt's own output went to stderr."""


def missing(packages: Sequence[str]) -> list[str]:
    """The packages of `packages` that dpkg does not have installed."""
    query = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {line.split()[0] for line in query.stdout.splitlines() if line.split()[1:2] == ["ii"]}
    return [p for p in packages if p not in installed]


def install(packages: Sequence[str]) -> list[str]:
    """Install what is missing of `packages` without starting any service; returns what was installed.

    apt's output goes to stderr, so the scripts' stdout stays theirs.
    """
    wanted = missing(packages)
    if not wanted:
        return []
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise AptError(f"needs the Debian packages {', '.join(wanted)}: install them as root")
    print(f"apt: installing {', '.join(wanted)}", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:  # exit 101: packages must not start their services (no init system here, and not wanted)
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *wanted]
        if subprocess.run(command, env=env, stdout=sys.stderr, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=sys.stderr, check=False)
            if subprocess.run(command, env=env, stdout=sys.stderr, check=False).returncode != 0:
                raise AptError(f"apt-get install {' '.join(wanted)} failed; see above")
    finally:
        if added_policy:
            policy.unlink()
    return wanted

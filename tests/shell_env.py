"""The environment of a user's shell, for tests that run a documented command as a user types it.

The suite itself runs under `make test` and pytest-cov: an outer make's variables would make the command's
own make print "Entering/Leaving directory" lines and behave as a sub-make; pytest-cov's would make its
processes write coverage into this run; an activated virtualenv's would pick the wrong Python.
"""

from __future__ import annotations

import os

FOREIGN_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
FOREIGN_PREFIXES = ("COV_CORE_", "COVERAGE_", "PYTEST_")


def user_shell_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in FOREIGN_ENV and not key.startswith(FOREIGN_PREFIXES)
    }
    env.update(extra)
    return env

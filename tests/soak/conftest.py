"""The soak tests run only when asked for (`pytest -m soak`, as `make soak` does): they take minutes and need
the real node's machine-wide bridge to themselves, so a plain `pytest` leaves them out (deselected)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.option.markexpr or ""):
        return
    soak = [item for item in items if item.get_closest_marker("soak")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]

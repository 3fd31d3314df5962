"""Shared fixtures: the real candles in ../shared/data and the real control plane (tests/cluster_plugin.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.cluster_plugin"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_endpoint_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test allows the endpoints it uses itself (tests/integration/example_runs.py), and gets them taken
    away after it: a developer's shell or another test never decides where a run may connect."""
    for name in ("TRAIDING_SIMULATORS", "TRAIDING_EXCHANGES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real Binance candles; tests that need it skip with the reason when it is absent."""
    if not (SHARED_DATA / "BTC_USDT-5m.json").is_file():
        pytest.skip(f"real candles not found at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA

"""docs/api-reference.md is what scripts/api_reference.py generates from the CRD and the argument parsers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_api_reference_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "api_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_reference_names_every_spec_field_and_every_command() -> None:
    text = (REPO / "docs" / "api-reference.md").read_text()
    from traiding.cli import SUBCOMMANDS  # noqa: PLC0415
    from traiding.resource import TradingRunSpec  # noqa: PLC0415

    for name in TradingRunSpec.model_fields:
        assert f"| `spec.{name}`" in text
    for command in SUBCOMMANDS:
        assert f"### traiding {command}\n" in text

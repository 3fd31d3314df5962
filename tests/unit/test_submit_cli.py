"""`traiding submit`'s checks of a manifest before anything is sent, and the creator it records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from traiding.errors import UserError
from traiding_operator.submit_cli import checked, with_creator

REPO = Path(__file__).resolve().parents[2]


def example() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text())
    return document


def test_a_manifest_that_approves_itself_is_refused_naming_the_annotation() -> None:
    document = example()
    document["metadata"]["annotations"] = {"traiding.io/approved-by": "mallory"}
    with pytest.raises(UserError, match=r"metadata.annotations.traiding.io/approved-by: a run is approved once it"):
        checked(document, "run.yaml")


def test_the_creator_is_recorded_unless_the_manifest_names_one() -> None:
    created = with_creator(example(), "system:serviceaccount:trading:nightly")
    assert created["metadata"]["annotations"] == {"traiding.io/created-by": "system:serviceaccount:trading:nightly"}
    named = example()
    named["metadata"]["annotations"] = {"traiding.io/created-by": "bob"}
    # The API server decides whether that is true (the chart's policy requires it to be the requester).
    assert with_creator(named, "alice")["metadata"]["annotations"]["traiding.io/created-by"] == "bob"
    assert with_creator(example(), None) == example()

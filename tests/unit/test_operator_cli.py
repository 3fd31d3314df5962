"""`traiding operator`'s flags: where to serve, how replicas coordinate, the Lease's timing."""

from __future__ import annotations

import pytest

from traiding.cli import main


def test_standalone_and_peering_are_two_choices_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["operator", "-n", "trading", "--standalone", "--peering", "traiding"])
    assert exit_.value.code == 2
    assert "not allowed with argument --standalone" in capsys.readouterr().err


def test_a_lease_too_short_to_renew_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator", "-n", "trading", "--lease-seconds", "2"]) == 2
    assert "--lease-seconds must be at least 3, got 2" in capsys.readouterr().err


def test_where_to_serve_must_be_said(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator", "--identity", "pod-0"]) == 2
    assert "--namespace NS (repeatable) or --all-namespaces" in capsys.readouterr().err


def test_a_bad_setting_stops_the_operator_before_it_starts_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIDING_SIMULATORS", '{"default": "ftp://nowhere"}')
    assert main(["operator", "-n", "trading"]) == 2
    assert "invalid setting: TRAIDING_SIMULATORS['default']: URL scheme should be 'http' or 'https'" in (
        capsys.readouterr().err
    )

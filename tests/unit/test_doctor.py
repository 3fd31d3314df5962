"""`traiding doctor`: every check reported, failures with what to do, exit code from required checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from traiding.cli import main


def test_a_healthy_installation_passes_and_skips_the_cluster_without_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["doctor", "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "ok  exchange layer   ccxt against the simulator:" in out
    assert "skip  cluster" in out
    assert "FAIL" not in out


def test_an_unwritable_cache_fails_and_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["doctor", "--cache", str(blocker / "cache")]) == 1
    assert "FAIL  candle cache" in capsys.readouterr().out


def test_an_unreachable_cluster_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    assert main(["doctor", "--cache", str(tmp_path / "cache"), "--kubeconfig", str(kubeconfig)]) == 1
    assert "FAIL  cluster          " in capsys.readouterr().out

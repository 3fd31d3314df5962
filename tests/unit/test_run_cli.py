"""`traiding run` guards a run's state: no silent restart over an unfinished run, no resume with another spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from traiding.cli import main
from traiding.manifest import load_manifest
from traiding.pipeline.local import save_status
from traiding.resource import TradingRunStatus

REPO = Path(__file__).resolve().parents[2]


def unfinished_run(tmp_path: Path) -> tuple[Path, Path]:
    manifest = tmp_path / "run.yaml"
    manifest.write_text((REPO / "examples" / "dry-run.yaml").read_text())
    output = tmp_path / "out"
    output.mkdir()
    spec = load_manifest(manifest).spec.model_dump(mode="json")
    save_status(output / "status.json", TradingRunStatus(phase="Trading", checkpoint={"runUid": "abc", "spec": spec}))
    return manifest, output


def test_a_new_run_does_not_silently_replace_an_unfinished_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, output = unfinished_run(tmp_path)
    assert main(["run", str(manifest), "-o", str(output)]) == 2
    assert "holds an unfinished run (phase Trading): continue it with --resume" in capsys.readouterr().err
    assert (output / "status.json").exists()


def test_resuming_with_an_edited_manifest_is_refused_naming_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, output = unfinished_run(tmp_path)
    document = yaml.safe_load(manifest.read_text())
    document["spec"]["mode"] = "live"
    document["spec"]["exchange"]["credentialsSecretRef"] = {"name": "keys"}
    manifest.write_text(yaml.safe_dump(document))
    assert main(["run", str(manifest), "-o", str(output), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "changed since the run started (spec.exchange, spec.mode)" in err
    assert "start over with --force" in err


def test_nothing_to_resume_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = REPO / "examples" / "dry-run.yaml"
    assert main(["run", str(manifest), "-o", str(tmp_path / "empty"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_an_exchange_id_ccxt_does_not_know_is_a_clear_error_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text())
    document["spec"]["exchange"] = {"id": "nosuchexchange", "simulator": {"url": "http://127.0.0.1:9"}}
    manifest = tmp_path / "run.yaml"
    manifest.write_text(yaml.safe_dump(document))
    assert main(["run", str(manifest), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "spec.exchange.id: unknown exchange id 'nosuchexchange'" in capsys.readouterr().err

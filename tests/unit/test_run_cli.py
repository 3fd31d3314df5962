"""`traiding run` guards a run's state (no silent restart over an unfinished run, no resume with another spec),
chooses the simulator's data and window, and shows its progress."""

from __future__ import annotations

import argparse
import io
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from traiding.cli import main
from traiding.errors import UserError
from traiding.manifest import load_manifest, parse_manifest
from traiding.pipeline.local import Progress, save_status
from traiding.resource import PhaseRecord, TradingRunSpec, TradingRunStatus
from traiding.run_cli import (
    _simulator_config,
    _simulator_data,
    _synthetic_days,
    check_approval_flag,
    check_replay_window,
)
from traiding_simulator.loading import build_market

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


def spec_of(**changes: Any) -> TradingRunSpec:
    document = yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text())
    for dotted, value in changes.items():
        node = document["spec"]
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return parse_manifest(document).spec


def test_an_empty_data_replays_the_bundled_candles_of_the_runs_pairs() -> None:
    sources, described = _simulator_data(spec_of(), REPO / "examples")
    assert [(s.symbol, s.interval, s.path.name) for s in sources] == [
        ("ETH/USDT", "5m", "ETH_USDT-5m.json.gz"),
        ("ETH/USDT", "1h", "ETH_USDT-1h.json.gz"),
    ]
    assert described == "bundled candles (ETH_USDT-5m, ETH_USDT-1h)"
    assert _simulator_data(spec_of(**{"exchange.simulator.data": "synthetic"}), REPO) == (
        [],
        "a seeded synthetic market",
    )


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"market.symbols": ["SOL/USDT"]}, "spec.market.symbols: no bundled candles for SOL/USDT (bundled: BTC/USDT"),
        ({"market.timeframe": "1m"}, "spec.market.timeframe: 1m candles cannot be built from the bundled ones"),
        ({"exchange.simulator.data": "../../shared/data"}, "spec.exchange.simulator.data: "),
    ],
)
def test_data_the_simulator_cannot_have_is_an_error_naming_the_field(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(UserError, match=re.escape(words)):
        _simulator_data(spec_of(**changes), Path("/nowhere/examples"))


def test_a_resumed_run_replays_its_market_at_the_dates_it_started_with() -> None:
    day = 86_400_000
    spec = spec_of()  # the example: ETH/USDT from 2021-05-29
    data, _ = _simulator_data(spec, REPO / "examples")
    pinned = 1_622_246_400_000  # 2021-05-29T00:00:00Z
    fresh = build_market(_simulator_config(spec, data, hold=True), wall_now_ms=pinned + 2_000 * day + 5)
    assert (fresh.shift_ms, fresh.start_ms) == (2_000 * day, pinned + 2_000 * day)
    # the next day a resumed run gets the shift and start its checkpoint holds, not a new one
    recorded = {"startMs": pinned, "shiftDays": 2_000}
    config = _simulator_config(spec, data, hold=False, replay=recorded)
    resumed = build_market(config, wall_now_ms=pinned + 2_001 * day + 5)
    assert (resumed.shift_ms, resumed.start_ms) == (fresh.shift_ms, fresh.start_ms)


def test_the_replay_window_must_fit_the_data() -> None:
    day = 86_400_000
    spec = spec_of()  # 90 days of lookback, a 24h session
    first, end = 1_606_780_800_000, 1_606_780_800_000 + 200 * day
    check_replay_window(spec, first, end, first + 90 * day)  # exactly enough history: fine
    with pytest.raises(
        UserError,
        match=r"spec.gates.dataCheck.lookback: 90d before the replay start .* set "
        r"spec.exchange.simulator.start to 2021-03-01T00:00:00Z or later",
    ):
        check_replay_window(spec, first, end, first + 89 * day)
    with pytest.raises(
        UserError,
        match=r"spec.session.duration: a 24h session from the replay start .* runs past "
        r"the end of the data .* set spec.exchange.simulator.start to 2021-06-18T00:00:00Z or earlier",
    ):
        check_replay_window(spec, first, end, end - day // 2)


def test_a_synthetic_market_is_sized_so_the_default_start_leaves_room_for_lookback_and_session() -> None:
    spec = spec_of(**{"exchange.simulator.data": "synthetic", "exchange.simulator.start": None})
    days = _synthetic_days(spec)
    assert days * 0.8 >= 90 and days * 0.2 >= 1  # the lookback before 80%, the session after it
    with pytest.raises(UserError, match="more than the 365 it can have"):
        _synthetic_days(spec_of(**{"exchange.simulator.data": "synthetic", "gates.dataCheck.lookback": "300d"}))


def statuses(phases: list[str], pcts: list[float]) -> list[TradingRunStatus]:
    out = [TradingRunStatus(phase=p, message=f"{p} message") for p in phases]
    for pct in pcts:
        out.append(
            TradingRunStatus(
                phase="Trading",
                message=f"{pct:.0f}% of the session",
                phases={"Trading": PhaseRecord(state="Running", results={"progressPct": pct})},
            )
        )
    return out


def test_progress_without_a_terminal_numbers_the_runs_steps_and_reports_every_tenth_of_the_session() -> None:
    stream = io.StringIO()
    progress = Progress(stream, live=False)
    pcts = [min(100.0, 0.3 * k) for k in range(1, 335)]  # steps of 0.3%, as a session of 5m candles gives
    for status in statuses(["Pending", "DataCheck", "Backtest", "ApiCheck"], pcts):
        progress.update(status)
    progress.update(TradingRunStatus(phase="Reporting", message="session finished"))
    lines = stream.getvalue().splitlines()
    assert [line for line in lines if line.startswith("[")] == [
        "[1/5] DataCheck",
        "[2/5] Backtest",
        "[3/5] ApiCheck",
        "[4/5] Trading",
        "[5/5] Reporting",
    ]
    session = [int(m.group(1)) for line in lines if (m := re.fullmatch(r" {4}(\d+)% of the session", line))]
    assert len(session) == 10 and all(0 < b - a <= 10 for a, b in itertools.pairwise([0, *session]))


def test_a_live_run_has_its_approval_step() -> None:
    stream = io.StringIO()
    progress = Progress(stream, live=True)
    for status in statuses(["Pending", "DataCheck", "Backtest", "ApiCheck", "AwaitingApproval", "Trading"], []):
        progress.update(status)
    assert "[4/6] AwaitingApproval" in stream.getvalue() and "[5/6] Trading" in stream.getvalue()


def test_liquidating_is_shown_without_shifting_the_step_numbers() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    for status in statuses(["Pending", "DataCheck", "Backtest", "ApiCheck", "Trading", "Liquidating", "Reporting"], []):
        progress.update(status)
    starts = [line for line in stream.getvalue().splitlines() if line.startswith("[")]
    assert starts[3:] == [
        "[4/5] Trading",
        "[!] Liquidating: closing the positions the session still holds",
        "[5/5] Reporting",
    ]


def test_an_exchange_id_ccxt_does_not_know_is_a_clear_error_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    document = yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text())
    document["spec"]["exchange"] = {"id": "nosuchexchange", "simulator": {"name": "test"}}
    monkeypatch.setenv("TRAIDING_SIMULATORS", '{"test": "http://127.0.0.1:9"}')
    manifest = tmp_path / "run.yaml"
    manifest.write_text(yaml.safe_dump(document))
    assert main(["run", str(manifest), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "spec.exchange.id: unknown exchange id 'nosuchexchange'" in capsys.readouterr().err


def test_approve_live_approves_only_a_run_that_waits_at_its_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "run.yaml"
    manifest.write_text((REPO / "examples" / "dry-run.yaml").read_text())
    # A first call would otherwise carry the approval into the gate before DataCheck, Backtest or ApiCheck ran.
    assert main(["run", str(manifest), "-o", str(tmp_path / "out"), "-q", "--approve-live"]) == 2
    err = capsys.readouterr().err
    assert "--approve-live approves a live run that waits at its approval gate; this run is in Pending" in err
    assert not (tmp_path / "out" / "events.jsonl").exists()  # nothing ran


def test_approve_live_is_refused_before_the_gate_and_changes_nothing_after_it() -> None:
    flag = argparse.Namespace(approve_live=True)
    for phase in ("Pending", "DataCheck", "Backtest", "ApiCheck"):
        with pytest.raises(UserError, match=f"this run is in {phase}"):
            check_approval_flag(flag, TradingRunStatus(phase=phase))
    for phase in ("AwaitingApproval", "Trading", "Liquidating"):  # at the gate; or resumed after it
        check_approval_flag(flag, TradingRunStatus(phase=phase))

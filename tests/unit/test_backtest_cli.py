"""`traiding backtest`: the JSON contract, the table, and user errors as "error: ..." with exit code 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from traiding.backtest_cli import parse_params
from traiding.cli import main
from traiding.domain.backtest import BacktestConfig, run_backtest
from traiding.domain.candles import load_candles
from traiding.domain.strategies import get_strategy
from traiding.errors import UserError

REQUIRED_KEYS = {"candles", "trades", "final_equity", "total_return_pct", "max_drawdown_pct", "sharpe", "win_rate"}
REPO_ROOT = Path(__file__).resolve().parents[2]
SMA_5_20 = ("--strategy", "sma-crossover", "--param", "fast=5", "--param", "slow=20")


@pytest.fixture
def wave_csv(tmp_path: Path) -> Path:
    """400 five-minute candles of a noisy sine: SMA 5/20 crosses many times; a 2-hour gap in the middle."""
    n = 400
    rng = np.random.default_rng(3)
    close = 100 + 5 * np.sin(np.arange(n) / 12) + rng.normal(0, 0.3, n)
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) + 0.2
    low = np.minimum(open_, close) - 0.2
    times = 1_700_000_000_000 + 300_000 * np.arange(n)
    times[200:] += 7_200_000
    path = tmp_path / "wave.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    columns = zip(times.tolist(), open_.tolist(), high.tolist(), low.tolist(), close.tolist(), strict=True)
    rows += [f"{t},{o!r},{h!r},{lo!r},{c!r},1.5" for t, o, h, lo, c in columns]
    path.write_text("\n".join(rows) + "\n")
    return path


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["backtest", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object on one line
    return json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))  # type: ignore[no-any-return]


def test_json_report_matches_the_backtest_it_ran(wave_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(
        capsys, "--data", str(wave_csv), "--strategy", "sma-crossover", "--param", "fast=5", "--param", "slow=20"
    )
    assert set(report) >= REQUIRED_KEYS | {"strategy", "params", "config", "sortino", "profit_factor", "exposure_pct"}
    assert report["strategy"] == "sma-crossover" and report["params"] == {"fast": 5, "slow": 20}
    assert report["candles"] == 400 and report["gaps"] == 1

    candles = load_candles(wave_csv)
    signals = get_strategy("sma-crossover", {"fast": 5, "slow": 20}).signals(candles)
    expected = run_backtest(candles, signals.entries, signals.exits, BacktestConfig()).metrics
    assert report["trades"] == expected.trades > 3
    assert report["final_equity"] == pytest.approx(expected.final_equity)
    assert report["sharpe"] == pytest.approx(expected.sharpe)
    assert report["config"] == BacktestConfig().model_dump()


def test_costs_and_sizing_flags_reach_the_backtest(wave_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--data", str(wave_csv), "--strategy", "sma-crossover", "--param", "fast=5", "--param", "slow=20"]
    free = run_json(capsys, *base, "--fee-rate", "0", "--initial-capital", "500")
    costly = run_json(capsys, *base, "--fee-rate", "0.01", "--slippage", "0.001", "--initial-capital", "500")
    assert free["config"]["initial_capital"] == 500  # type: ignore[index]
    assert costly["total_fees"] > 0 == free["total_fees"]  # type: ignore[operator]
    assert costly["final_equity"] < free["final_equity"]  # type: ignore[operator]
    half = run_json(capsys, *base, "--position-fraction", "0.5", "--stop-loss-pct", "0.5")
    assert half["config"]["position_fraction"] == 0.5 and half["config"]["stop_loss_pct"] == 0.5  # type: ignore[index]
    assert half["exposure_pct"] < free["exposure_pct"]  # type: ignore[operator]  # stops cut trades short


def test_table_output_is_readable(wave_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["backtest", "--data", str(wave_csv), "--strategy", "sma-crossover", "--param", "fast=5", "--param", "slow=20"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "sma-crossover (fast=5, slow=20)" in out
    for label in ("Final equity", "Total return", "Sharpe", "Max drawdown", "Win rate", "Trades", "Gaps in data"):
        assert label in out
    assert "nan" not in out.lower()


def test_json_on_real_btc_candles(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(
        capsys,
        *("--data", str(shared_data / "BTC_USDT-5m.json"), "--strategy", "sma-crossover"),
        *("--param", "fast=20", "--param", "slow=50", "--fee-rate", "0.001"),
    )
    assert report["candles"] == 65741 and report["gaps"] == 6
    assert report["trades"] > 100  # type: ignore[operator]
    assert all(v is None or not isinstance(v, float) or math.isfinite(v) for v in report.values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent/candles.json", "--strategy", "sma-crossover"], "no such file"),
        (["--strategy", "no-such-strategy"], "no-such-strategy"),
        (["--strategy", "sma-crossover", "--param", "fast20"], "expected KEY=VALUE"),
        (["--strategy", "sma-crossover", "--param", "bogus=1"], "bogus"),
        (["--strategy", "sma-crossover", "--fee-rate", "-0.1"], "--fee-rate"),
        (["--strategy", "sma-crossover", "--position-fraction", "2"], "--position-fraction"),
    ],
)
def test_user_errors_print_a_message_and_exit_2(
    wave_csv: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    if "--data" not in args:
        args = ["--data", str(wave_csv), *args]
    assert main(["backtest", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_parse_params_types_values() -> None:
    assert parse_params(["fast=20", "ratio=0.5", "flag=true", "name=ema", "neg=-3"]) == {
        "fast": 20,
        "ratio": 0.5,
        "flag": True,
        "name": "ema",
        "neg": -3,
    }
    assert parse_params(["label=a=b"]) == {"label": "a=b"}
    for bad in (["=3"], ["x"], ["x=1", "x=2"]):
        with pytest.raises(UserError):
            parse_params(bad)


def test_installed_command_prints_json(wave_csv: Path) -> None:
    command = Path(sys.executable).parent / "traiding"
    if not command.exists():
        command = REPO_ROOT / ".venv" / "bin" / "traiding"
    done = subprocess.run(
        [str(command), "backtest", "--data", str(wave_csv), *SMA_5_20, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) >= REQUIRED_KEYS
    failed = subprocess.run(
        [str(command), "backtest", "--data", str(wave_csv), "--strategy", "nope"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert failed.returncode == 2 and failed.stderr.startswith("error: ") and "Traceback" not in failed.stderr

"""`traiding backtest`: the JSON contract, the table, and user errors as "error: ..." with exit code 2."""

from __future__ import annotations

import json
import math
import re
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
    """400 hourly candles (16 days: long enough to annualise) of a noisy sine: SMA 5/20 crosses many times;
    a 3-hour gap in the middle."""
    n = 400
    rng = np.random.default_rng(3)
    close = 100 + 5 * np.sin(np.arange(n) / 12) + rng.normal(0, 0.3, n)
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) + 0.2
    low = np.minimum(open_, close) - 0.2
    times = 1_700_000_000_000 + 3_600_000 * np.arange(n)
    times[200:] += 10_800_000
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
    assert report["sharpe"] == pytest.approx(expected.sharpe) and report["sharpe"] is not None
    assert report["market_change_pct"] == pytest.approx((candles.close[-1] / candles.close[0] - 1) * 100)
    assert len(report["trade_list"]) == report["trades"]  # type: ignore[arg-type]
    assert report["row_order"]["duplicates"] == 0 and report["notes"] == []  # type: ignore[index]
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


def write_json_candles(path: Path, times: list[int]) -> Path:
    path.write_text(
        json.dumps([[t, 100.0 + i % 7, 103.0 + i % 7, 98.0 + i % 7, 101.0 + i % 7, 5.0] for i, t in enumerate(times)])
    )
    return path


def test_the_bundled_candles_by_pair_and_timeframe_need_no_path(capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "--pairs", "ETH/USDT", "--timeframe", "1h", *SMA_5_20)
    assert report["data"] == "ETH_USDT-1h" and report["candles"] == 5482
    assert main(["backtest", "--strategy", "sma-crossover"]) == 2  # two timeframes bundled: which one?
    assert "holds candles at 5m, 1h: choose one with --timeframe" in capsys.readouterr().err
    assert main(["backtest", "--pairs", "SOL/USDT", "--timeframe", "1h", "--strategy", "sma-crossover"]) == 2
    assert "no candles for SOL/USDT (it holds BTC/USDT, ETH/USDT)" in capsys.readouterr().err


def test_timerange_keeps_the_candles_from_start_to_end_as_freqtrade_does(capsys: pytest.CaptureFixture[str]) -> None:
    bundled = ("--pairs", "ETH/USDT", "--timeframe", "1h", *SMA_5_20)
    january = run_json(capsys, *bundled, "--timerange", "20210101-20210201")
    assert january["start_time"] == 1_609_459_200_000  # 2021-01-01T00:00Z
    assert january["end_time"] == 1_612_137_600_000  # 2021-02-01T00:00Z: the end is included, as in freqtrade
    assert january["timerange"] == "20210101-20210201"
    tail = run_json(capsys, *bundled, "--timerange", "20210701-")
    assert tail["start_time"] == 1_625_097_600_000 and tail["end_time"] == 1_626_552_000_000  # to the last candle
    head = run_json(capsys, *bundled, "--timerange", "-1607040000")  # epoch seconds: 2020-12-04T00:00Z
    assert head["start_time"] == 1_606_780_800_000 and head["candles"] == 73
    assert main(["backtest", *bundled, "--timerange", "2021-01-01"]) == 2
    assert "--timerange: invalid timerange '2021-01-01': expected START-END" in capsys.readouterr().err
    assert main(["backtest", *bundled, "--timerange", "20300101-"]) == 2
    assert "no candles in --timerange 20300101- (the file runs from 2020-12-01" in capsys.readouterr().err


def test_several_files_are_backtested_each_with_a_per_pair_table(
    tmp_path: Path, wave_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "ETH_USDT-1h.csv"
    other.write_text(wave_csv.read_text())
    args = ["--data", str(wave_csv), "--data", str(other), *SMA_5_20]
    assert main(["backtest", *args]) == 0
    table = capsys.readouterr().out
    assert "on 2 files" in table and f"  {wave_csv}" in table and "  ETH_USDT-1h " in table
    document = run_json(capsys, *args)
    pairs = document["pairs"]
    assert isinstance(pairs, list) and [p["data"] for p in pairs] == [str(wave_csv), "ETH_USDT-1h"]
    assert pairs[0]["trades"] == pairs[1]["trades"] > 3  # the same candles, each on its own full capital
    assert main(["backtest", "--data", str(wave_csv), "--data", str(wave_csv), *SMA_5_20]) == 2
    assert "is named twice" in capsys.readouterr().err


def test_a_folder_is_read_as_a_freqtrade_data_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    times = [1_700_000_000_000 + 3_600_000 * i for i in range(300)]
    write_json_candles(tmp_path / "BTC_USDT-1h.json", times)
    write_json_candles(tmp_path / "ETH_USDT-1h.json", times)
    document = run_json(capsys, "--data", str(tmp_path), "--pairs", "ETH/USDT", *SMA_5_20)
    assert document["data"] == "ETH_USDT-1h"
    both = run_json(capsys, "--data", str(tmp_path), *SMA_5_20)
    pairs = both["pairs"]
    assert isinstance(pairs, list) and [p["data"] for p in pairs] == ["BTC_USDT-1h", "ETH_USDT-1h"]
    assert main(["backtest", "--data", str(tmp_path / "BTC_USDT-1h.json"), "--pairs", "BTC/USDT", *SMA_5_20]) == 2
    assert "--pairs and --timeframe choose files in a folder" in capsys.readouterr().err


def test_duplicate_and_unsorted_rows_are_said_then_backtested_sorted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    times = [1_700_000_000_000 + 3_600_000 * i for i in range(300)]
    times[40], times[41] = times[41], times[40]  # one pair of rows swapped
    times.insert(100, times[99])  # one row repeated
    path = write_json_candles(tmp_path / "messy.json", times)
    assert main(["backtest", "--data", str(path), *SMA_5_20, "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["candles"] == 300  # sorted, one row per time
    assert report["row_order"]["duplicates"] == 1 and report["row_order"]["first_duplicate_row"] == 101
    assert report["row_order"]["out_of_order"] == 1 and report["row_order"]["first_out_of_order_row"] == 42
    assert captured.err.startswith(f"note: {path}: 1 duplicate row (same open time as an earlier row; first: row 101")
    assert "backtested sorted by time with one row per time" in captured.err
    assert main(["backtest", "--data", str(path), *SMA_5_20]) == 0
    assert "1 row out of time order (first: row 42" in capsys.readouterr().out  # the table says it too


def test_a_warm_up_longer_than_the_data_is_an_error_that_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_json_candles(tmp_path / "short.json", [1_700_000_000_000 + 300_000 * i for i in range(30)])
    assert main(["backtest", "--data", str(path), "--strategy", "sma-crossover", "--param", "slow=50"]) == 2
    err = capsys.readouterr().err
    assert "30 candles, no more than the strategy's warm-up of 50" in err and "not give a single signal" in err


def test_a_period_too_short_to_annualise_says_so_instead_of_a_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_json_candles(tmp_path / "day.json", [1_700_000_000_000 + 300_000 * i for i in range(288)])
    assert main(["backtest", "--data", str(path), *SMA_5_20]) == 0
    table = capsys.readouterr().out
    assert re.search(r"Sharpe \(annualised\) +not meaningful \(too short to annualise, see below\)", table)
    assert "CAGR, Sharpe, Sortino and Calmar are not meaningful over 1d: annualising needs at least 7d" in table
    report = run_json(capsys, "--data", str(path), *SMA_5_20)
    assert report["sharpe"] is None and "not meaningful over 1d" in str(report["annualised_note"])


def test_trades_lists_every_trade_with_its_times_prices_pnl_and_exit_reason(
    wave_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", "--data", str(wave_csv), *SMA_5_20, "--trades"]) == 0
    out = capsys.readouterr().out
    report = run_json(capsys, "--data", str(wave_csv), *SMA_5_20)
    trade_lines = [
        line for line in out.splitlines() if line.startswith("  wave.csv ") or line.startswith(f"  {wave_csv}")
    ]
    assert len(trade_lines) == report["trades"]
    assert "entry (UTC)" in out and "exit reason" in out and trade_lines[0].rstrip().endswith("signal")


def test_json_piped_into_head_ends_without_a_traceback() -> None:
    command = Path(sys.executable).parent / "traiding"
    if not command.exists():
        command = REPO_ROOT / ".venv" / "bin" / "traiding"
    done = subprocess.run(
        f"'{command}' backtest --timeframe 5m --strategy sma-crossover --json | head -c 100",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0 and len(done.stdout) == 100
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr

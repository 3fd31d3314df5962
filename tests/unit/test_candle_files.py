"""Candle files as freqtrade keeps them: names, data directories, feather, and rows out of order said plainly."""

from __future__ import annotations

import builtins
import gzip
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import feather

from traiding.data import BUNDLED_CANDLES, bundled_candle_files, bundled_summary
from traiding.domain.candle_files import CandleFile, find_candle_files, parse_candle_file_name
from traiding.domain.candles import CandleFileError, Candles, load_candles, row_order

T0 = 1_606_780_800_000  # 2020-12-01T00:00:00Z
STEP = 300_000


def rows(n: int) -> list[list[float]]:
    return [[T0 + i * STEP, 100.0 + i, 102.0 + i, 99.0 + i, 100.5 + i, 10.0 + i] for i in range(n)]


def write_feather(path: Path, data: list[list[float]], *, date_type: Any) -> Path:
    """A feather file laid out as freqtrade writes it: date (a UTC timestamp), open, high, low, close, volume."""
    columns = list(zip(*data, strict=True))
    dates = pa.array([int(t) for t in columns[0]], pa.int64())
    if pa.types.is_timestamp(date_type):
        per_ms = {"ns": 1_000_000, "us": 1_000, "ms": 1}[date_type.unit]
        dates = pa.array([int(t) * per_ms for t in columns[0]], pa.int64()).cast(date_type)
    table = pa.table(
        {
            "date": dates,
            **{
                n: pa.array(c, pa.float64())
                for n, c in zip(("open", "high", "low", "close", "volume"), columns[1:], strict=True)
            },
        }
    )
    feather.write_feather(table, str(path), compression="lz4")
    return path


def test_names_say_pair_and_timeframe_in_every_format_freqtrade_writes() -> None:
    for name in ("BTC_USDT-5m.json", "BTC_USDT-5m.json.gz", "BTC_USDT-5m.feather", "BTC_USDT-5m.csv"):
        assert parse_candle_file_name(Path(name)) == CandleFile("BTC/USDT", "5m", Path(name))
    assert parse_candle_file_name(Path("eth_usdt-1h.csv")) == CandleFile("ETH/USDT", "1h", Path("eth_usdt-1h.csv"))
    # Not spot candles of one pair: futures candles, trades, notes, unknown formats.
    for name in ("BTC_USDT_USDT-5m-futures.feather", "BTC_USDT-trades.json", "README.md", "BTC_USDT-5m.parquet"):
        assert parse_candle_file_name(Path(name)) is None
    assert CandleFile("BTC/USDT", "5m", Path("x")).name == "BTC_USDT-5m"


def test_a_freqtrade_data_directory_is_read_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "ETH_USDT-1h.json").write_text(json.dumps(rows(3)))
    (tmp_path / "ETH_USDT-5m.json.gz").write_bytes(gzip.compress(json.dumps(rows(3)).encode()))
    write_feather(tmp_path / "BTC_USDT-5m.feather", rows(3), date_type=pa.timestamp("ns", "UTC"))
    (tmp_path / "BTC_USDT_USDT-5m-futures.feather").write_bytes(b"")
    (tmp_path / "futures").mkdir()
    found = find_candle_files(tmp_path)
    assert [(f.symbol, f.timeframe, f.path.name) for f in found] == [
        ("BTC/USDT", "5m", "BTC_USDT-5m.feather"),
        ("ETH/USDT", "5m", "ETH_USDT-5m.json.gz"),
        ("ETH/USDT", "1h", "ETH_USDT-1h.json"),  # by pair, then shortest timeframe first
    ]
    assert all(len(load_candles(f.path)) == 3 for f in found)


def test_two_files_for_one_pair_and_timeframe_are_refused_rather_than_one_picked(tmp_path: Path) -> None:
    (tmp_path / "BTC_USDT-5m.json").write_text(json.dumps(rows(3)))
    write_feather(tmp_path / "BTC_USDT-5m.feather", rows(3), date_type=pa.int64())
    with pytest.raises(
        CandleFileError, match=re.escape("holds BTC_USDT-5m.feather and BTC_USDT-5m.json: two files for BTC/USDT 5m")
    ):
        find_candle_files(tmp_path)
    with pytest.raises(CandleFileError, match="no such folder"):
        find_candle_files(tmp_path / "nowhere")


@pytest.mark.parametrize("date_type", [pa.timestamp("ns", "UTC"), pa.timestamp("ms", "UTC"), pa.int64()])
def test_feather_files_load_like_json(tmp_path: Path, date_type: Any) -> None:
    data = rows(50)
    from_feather = load_candles(write_feather(tmp_path / "BTC_USDT-5m.feather", data, date_type=date_type))
    (tmp_path / "same.json").write_text(json.dumps(data))
    from_json = load_candles(tmp_path / "same.json")
    for column in ("time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(from_feather, column), getattr(from_json, column))


def test_feather_problems_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "BTC_USDT-5m.feather"
    feather.write_feather(pa.table({"when": [1], "price": [2.0]}), str(bad))
    with pytest.raises(CandleFileError, match=r"columns must be date .* got when, price"):
        load_candles(bad)
    (tmp_path / "junk.feather").write_bytes(b"not arrow")
    with pytest.raises(CandleFileError, match=r"junk\.feather: not a readable feather file"):
        load_candles(tmp_path / "junk.feather")
    with pytest.raises(CandleFileError, match="no such file"):
        load_candles(tmp_path / "missing.feather")


def test_without_pyarrow_a_feather_file_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_feather(tmp_path / "BTC_USDT-5m.feather", rows(3), date_type=pa.int64())
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(CandleFileError, match=r"needs pyarrow: pip install 'ai-traiding\[feather\]'"):
        load_candles(path)


def test_row_order_counts_duplicates_and_rows_out_of_order_and_names_the_first() -> None:
    times = np.array([0, 1, 2, 2, 3, 5, 4, 6, 6, 6], dtype=np.int64) * STEP + T0
    close = np.ones(len(times))
    order = row_order(Candles(times, close, close, close, close, close))
    assert (order.duplicates, order.first_duplicate_row, order.out_of_order, order.first_out_of_order_row) == (
        3,
        4,
        1,
        7,
    )
    assert order.describe() == (
        "3 duplicate rows (same open time as an earlier row; first: row 4, 2020-12-01T00:10:00Z); "
        "1 row out of time order (first: row 7, 2020-12-01T00:20:00Z)"
    )
    clean = row_order(Candles(times[:3], close[:3], close[:3], close[:3], close[:3], close[:3]))
    assert clean.clean and clean.describe() == ""


def test_the_bundled_candles_are_real_clean_and_described() -> None:
    files = bundled_candle_files()
    assert [f.name for f in files] == ["BTC_USDT-5m", "BTC_USDT-1h", "ETH_USDT-5m", "ETH_USDT-1h"]
    assert bundled_summary() == "BTC/USDT, ETH/USDT at 5m, 1h"
    readme = (BUNDLED_CANDLES / "README.md").read_text()
    for file in files:
        candles = load_candles(file.path)
        assert row_order(candles).clean
        assert candles.time[0] == T0  # 2020-12-01, as the README says
        assert f"`{file.path.name}`" in readme and f"{len(candles):,}" in readme
    for subject in ("Source", "Known gaps", "Licence", "52f08a78"):
        assert subject in readme

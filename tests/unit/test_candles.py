from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from traiding.domain.candles import (
    CandleCache,
    CandleFileError,
    Candles,
    candles_between,
    candles_from_rows,
    concat_candles,
    empty_candles,
    load_candles,
    merge_candles,
    normalize,
    save_candles,
)
from traiding.errors import UserError

T0 = 1_606_780_800_000  # 2020-12-01T00:00:00Z
FIVE_MINUTES = 300_000


def rows(n: int, start: int = T0, step: int = FIVE_MINUTES) -> list[list[float]]:
    """Consistent candles: open/close inside [low, high], prices positive."""
    out: list[list[float]] = []
    for i in range(n):
        base = 100.0 + i
        out.append([start + i * step, base, base + 2.0, base - 1.0, base + 0.5, 10.0 + i])
    return out


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def make(times: list[int], closes: list[float]) -> Candles:
    close = np.asarray(closes, dtype=np.float64)
    return Candles(np.asarray(times, dtype=np.int64), close - 0.5, close + 1, close - 1, close, close * 0 + 1)


# ---------------------------------------------------------------- JSON


def test_load_freqtrade_json(tmp_path: Path) -> None:
    data = rows(5)
    candles = load_candles(write_json(tmp_path / "BTC_USDT-5m.json", data))
    assert len(candles) == 5
    assert candles.time.dtype == np.int64
    assert candles.close.dtype == np.float64
    assert candles.time.tolist() == [r[0] for r in data]
    assert candles.open.tolist() == [r[1] for r in data]
    assert candles.high.tolist() == [r[2] for r in data]
    assert candles.low.tolist() == [r[3] for r in data]
    assert candles.close.tolist() == [r[4] for r in data]
    assert candles.volume.tolist() == [r[5] for r in data]


def test_load_json_gz(tmp_path: Path) -> None:
    path = tmp_path / "x.json.gz"
    path.write_bytes(gzip.compress(json.dumps(rows(3)).encode()))
    assert load_candles(path).time.tolist() == [T0, T0 + FIVE_MINUTES, T0 + 2 * FIVE_MINUTES]


def test_epoch_seconds_are_converted_to_milliseconds(tmp_path: Path) -> None:
    data = rows(3)
    for row in data:
        row[0] = row[0] // 1000
    assert load_candles(write_json(tmp_path / "s.json", data)).time.tolist() == [r[0] * 1000 for r in data]


def test_load_keeps_duplicates_and_out_of_order_rows(tmp_path: Path) -> None:
    data = rows(4)
    data = [data[0], data[2], data[1], data[1], data[3]]
    candles = load_candles(write_json(tmp_path / "messy.json", data))
    assert candles.time.tolist() == [r[0] for r in data]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.__setitem__(2, d[2][:4]), r"row 3: expected 6 columns .*got 4"),
        (lambda d: d[16].__setitem__(4, "abc"), r"row 17: not a number 'abc' in column close"),
        (lambda d: d[4].__setitem__(2, {"a": 1}), r"row 5: not a number \{\"a\": 1\} in column high"),
        (lambda d: d.__setitem__(7, {"t": 1}), r"row 8: expected a \[time, open, high, low, close, volume\]"),
        (lambda d: d[16].__setitem__(2, 5.0) or d[16].__setitem__(3, 6.0), r"row 17: high 5.0 below low 6.0"),
        (lambda d: d[9].__setitem__(3, None), r"row 10: missing value \(null or NaN\) in column low"),
        (lambda d: d[0].__setitem__(1, -1.0), r"row 1: open -1.0 is not a positive price"),
        (lambda d: d[5].__setitem__(5, -3.0), r"row 6: negative volume -3.0"),
        (lambda d: d[5].__setitem__(4, 1000.0), r"row 6: close 1000.0 outside \[low 104.0, high 107.0\]"),
        (lambda d: d[5].__setitem__(0, T0 + 0.5), r"row 6: timestamp .* is not a whole number of milliseconds"),
        (lambda d: d[5].__setitem__(0, -T0), r"row 6: negative timestamp"),
    ],
)
def test_malformed_json_names_file_row_and_problem(tmp_path: Path, mutate: object, expected: str) -> None:
    data: list[list[object]] = rows(20)  # type: ignore[assignment]
    mutate(data)  # type: ignore[operator]
    path = write_json(tmp_path / "bad.json", data)
    with pytest.raises(CandleFileError, match=expected) as caught:
        load_candles(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, UserError)
    assert isinstance(caught.value, ValueError)


def test_numeric_strings_are_accepted(tmp_path: Path) -> None:
    data: list[list[object]] = rows(2)  # type: ignore[assignment]
    data[1][4] = "101.25"
    data[0][4] = "100.25"
    assert load_candles(write_json(tmp_path / "x.json", data)).close.tolist() == [100.25, 101.25]


def test_price_checks_can_be_left_to_the_quality_check(tmp_path: Path) -> None:
    data = rows(3)
    data[1][2], data[1][3] = 5.0, 6.0  # high below low
    data[2][1] = 0.0
    path = write_json(tmp_path / "x.json", data)
    with pytest.raises(CandleFileError):
        load_candles(path)
    candles = load_candles(path, check_prices=False)
    assert candles.high[1] == 5.0
    assert candles.open[2] == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", r"not valid JSON: .*line 1 column 2"),
        ('{"data": []}', r"expected a JSON array .* got a dict"),
        ("[]", r"holds no candles"),
    ],
)
def test_json_file_level_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(CandleFileError, match=expected):
        load_candles(path)


def test_missing_file_unknown_type_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CandleFileError, match=r"nope\.json: no such file"):
        load_candles(tmp_path / "nope.json")
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(CandleFileError, match=r"unknown candle file type.*\.json, \.json\.gz, \.csv"):
        load_candles(tmp_path / "x.parquet")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(CandleFileError, match="directory"):
        load_candles(tmp_path / "dir.json")
    (tmp_path / "broken.json.gz").write_bytes(b"not gzip")
    with pytest.raises(CandleFileError, match="cannot read"):
        load_candles(tmp_path / "broken.json.gz")


def test_candles_from_rows_validates_like_the_loader() -> None:
    candles = candles_from_rows([tuple(r) for r in rows(3)], source="binance BTC/USDT 5m")
    assert len(candles) == 3
    with pytest.raises(CandleFileError, match=r"binance BTC/USDT 5m: row 2: expected 6 columns"):
        candles_from_rows([rows(1)[0], [T0, 1.0]], source="binance BTC/USDT 5m")


# ---------------------------------------------------------------- CSV


def test_load_csv_with_epoch_ms_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "Timestamp,Open,High,Low,Close,Volume,trades\n"
        f"{T0},1,2,0.5,1.5,10,7\n"
        "\n"
        f"{T0 + FIVE_MINUTES},1.5,2.5,1.0,2.0,11,8\n"
    )
    candles = load_candles(path)
    assert candles.time.tolist() == [T0, T0 + FIVE_MINUTES]
    assert candles.close.tolist() == [1.5, 2.0]
    assert candles.volume.tolist() == [10.0, 11.0]


def test_load_csv_with_reordered_columns_and_epoch_seconds(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(f"close,open,volume,high,low,time\n1.5,1,10,2,0.5,{T0 // 1000}\n")
    candles = load_candles(path)
    assert candles.time.tolist() == [T0]
    assert (candles.open[0], candles.high[0], candles.low[0], candles.close[0]) == (1.0, 2.0, 0.5, 1.5)


def test_load_csv_with_iso_dates(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(
        "date,open,high,low,close,volume\n"
        "2020-12-01T00:00:00Z,1,2,0.5,1.5,10\n"
        "2020-12-01 00:05:00,1,2,0.5,1.5,10\n"
        "2020-12-01T02:10:00.250+02:00,1,2,0.5,1.5,10\n"
    )
    assert load_candles(path).time.tolist() == [T0, T0 + FIVE_MINUTES, T0 + 2 * FIVE_MINUTES + 250]


def test_load_headerless_csv_in_freqtrade_order(tmp_path: Path) -> None:
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(f"{T0},1,2,0.5,1.5,10\n{T0 + FIVE_MINUTES},1,2,0.5,1.5,10\n".encode()))
    assert load_candles(path).time.tolist() == [T0, T0 + FIVE_MINUTES]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f"{T0},1,2,0.5,1.5,10\n{T0},1,2,0.5\n", r"row 2 \(line 3\): expected 6 columns, got 4"),
        (f"{T0},1,2,0.5,1.5,10\n{T0},1,2,0.5,abc,1\n", r"row 2 \(line 3\): not a number 'abc' in column close"),
        (f"{T0},1,2,0.5, ,10\n", r"row 1 \(line 2\): empty value in column close"),
        (f"{T0},1,5,6,5.5,10\n", r"row 1 \(line 2\): high 5.0 below low 6.0"),
        ("2020-12-01,1,2,0.5,1.5,1\nyesterday,1,2,0.5,1.5,1\n", r"row 2 \(line 3\): not a timestamp 'yesterday'"),
    ],
)
def test_malformed_csv_names_file_row_line_and_problem(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,open,high,low,close,volume\n" + body)
    with pytest.raises(CandleFileError, match=expected) as caught:
        load_candles(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", r"holds no candles"),
        ("timestamp,open,high,low,close,volume\n", r"only a header"),
        ("when,open,high,low,close\n1,2,3,4,5\n", r"line 1: the header must name the columns timestamp"),
    ],
)
def test_csv_file_level_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CandleFileError, match=expected):
        load_candles(path)


# ---------------------------------------------------------------- saving, merging


@pytest.mark.parametrize("name", ["x.json", "x.json.gz", "x.csv", "x.csv.gz"])
def test_save_and_load_round_trip_exactly(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(1)
    n = 50
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    candles = Candles(
        T0 + np.arange(n, dtype=np.int64) * FIVE_MINUTES,
        open_,
        np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n)),
        np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n)),
        close,
        rng.uniform(0, 1000, n),
    )
    save_candles(candles, tmp_path / "sub" / name)
    loaded = load_candles(tmp_path / "sub" / name)
    for column in ("time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(loaded, column), getattr(candles, column)), column
    assert [p.name for p in (tmp_path / "sub").iterdir()] == [name]  # no temporary file left behind


def test_saved_json_is_freqtrade_format(tmp_path: Path) -> None:
    save_candles(make([T0, T0 + FIVE_MINUTES], [10.0, 11.0]), tmp_path / "x.json")
    data = json.loads((tmp_path / "x.json").read_text())
    assert data == [[T0, 9.5, 11.0, 9.0, 10.0, 1.0], [T0 + FIVE_MINUTES, 10.5, 12.0, 10.0, 11.0, 1.0]]
    assert isinstance(data[0][0], int)


def test_save_rejects_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(CandleFileError, match="unknown candle file type"):
        save_candles(make([T0], [1.0]), tmp_path / "x.txt")


def test_normalize_sorts_and_keeps_the_later_duplicate() -> None:
    messy = make([3, 1, 2, 1, 3], [30.0, 10.0, 20.0, 11.0, 31.0])
    clean = normalize(messy)
    assert clean.time.tolist() == [1, 2, 3]
    assert clean.close.tolist() == [11.0, 20.0, 31.0]
    assert clean.open.tolist() == [10.5, 19.5, 30.5]


def test_normalize_returns_clean_input_unchanged() -> None:
    clean = make([1, 2, 3], [1.0, 2.0, 3.0])
    assert normalize(clean) is clean
    assert len(normalize(empty_candles())) == 0


def test_merge_candles_is_a_union_where_the_newer_wins() -> None:
    older = make([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0])
    newer = make([3, 4, 5, 6], [30.0, 40.0, 50.0, 60.0])
    merged = merge_candles(older, newer)
    assert merged.time.tolist() == [1, 2, 3, 4, 5, 6]
    assert merged.close.tolist() == [1.0, 2.0, 30.0, 40.0, 50.0, 60.0]
    assert merge_candles(newer, older).close.tolist() == [1.0, 2.0, 3.0, 4.0, 50.0, 60.0]
    assert merge_candles(empty_candles(), newer).close.tolist() == newer.close.tolist()


def test_concat_and_between() -> None:
    joined = concat_candles([make([1, 2], [1.0, 2.0]), make([5, 3], [5.0, 3.0])])
    assert joined.time.tolist() == [1, 2, 5, 3]
    assert len(concat_candles([])) == 0
    window = candles_between(make([10, 20, 30, 40], [1.0, 2.0, 3.0, 4.0]), 20, 40)
    assert window.time.tolist() == [20, 30]


# ---------------------------------------------------------------- the real files


def test_real_file_loads_every_row(shared_data: Path) -> None:
    path = shared_data / "BTC_USDT-5m.json"
    raw = json.loads(path.read_text())
    candles = load_candles(path)
    assert len(candles) == len(raw)
    assert candles.time[0] == raw[0][0] and candles.time[-1] == raw[-1][0]
    assert candles.close[1234] == raw[1234][4]
    assert bool(np.all(np.diff(candles.time) > 0))


# ---------------------------------------------------------------- the cache


def series(start_index: int, stop_index: int, *, skip: tuple[int, ...] = ()) -> Candles:
    """5m candles at T0 + k*5m for k in [start_index, stop_index), close = k."""
    ks = [k for k in range(start_index, stop_index) if k not in skip]
    return make([T0 + k * FIVE_MINUTES for k in ks], [float(k) + 10 for k in ks])


def at(k: int) -> int:
    return T0 + k * FIVE_MINUTES


def test_cache_miss_then_hit(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    assert cache.get("binance", "BTC/USDT", "5m", at(0), at(10)) is None
    assert cache.missing("binance", "BTC/USDT", "5m", at(0), at(10)) == [(at(0), at(10))]
    cache.put("binance", "BTC/USDT", "5m", series(0, 10), start_ms=at(0), end_ms=at(10))
    assert cache.path_for("binance", "BTC/USDT", "5m") == tmp_path / "binance" / "BTC_USDT-5m.json"
    hit = cache.get("binance", "BTC/USDT", "5m", at(2), at(5))
    assert hit is not None
    assert hit.time.tolist() == [at(2), at(3), at(4)]
    assert cache.get("binance", "ETH/USDT", "5m", at(2), at(5)) is None
    assert cache.get("binance", "BTC/USDT", "1h", at(2), at(5)) is None


def test_cache_knows_which_ranges_were_fetched_and_keeps_real_gaps(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    # The exchange had no candles 3..5 (maintenance): the range was still fetched, so it is covered.
    cache.put("binance", "BTC/USDT", "5m", series(0, 10, skip=(3, 4, 5)), start_ms=at(0), end_ms=at(10))
    hit = cache.get("binance", "BTC/USDT", "5m", at(0), at(10))
    assert hit is not None
    assert len(hit) == 7
    # Not yet fetched: the tail, and a hole between two fetches.
    cache.put("binance", "BTC/USDT", "5m", series(20, 30), start_ms=at(20), end_ms=at(30))
    assert cache.missing("binance", "BTC/USDT", "5m", at(0), at(40)) == [(at(10), at(20)), (at(30), at(40))]
    assert cache.get("binance", "BTC/USDT", "5m", at(5), at(25)) is None
    cache.put("binance", "BTC/USDT", "5m", series(10, 20), start_ms=at(10), end_ms=at(20))
    assert cache.coverage("binance", "BTC/USDT", "5m") == [(at(0), at(30))]
    full = cache.get("binance", "BTC/USDT", "5m", at(0), at(30))
    assert full is not None
    assert len(full) == 27
    assert bool(np.all(np.diff(full.time) > 0))


def test_cache_aligns_requests_to_candle_open_times(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.put("binance", "BTC/USDT", "5m", series(0, 10))  # covers at(0) .. at(10) by default
    # Open times in [at(0) - 1ms, at(10) - 1ms] are exactly at(0) .. at(9): covered.
    assert cache.missing("binance", "BTC/USDT", "5m", at(0) - 1, at(10) - 1) == []
    assert cache.missing("binance", "BTC/USDT", "5m", at(1) + 1, at(1) + 2) == []  # no open time inside
    assert cache.missing("binance", "BTC/USDT", "5m", at(9), at(10) + 1) == [(at(10), at(11))]


def test_cache_put_merges_newer_wins_and_clips_to_the_range(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.put("binance", "BTC/USDT", "5m", series(0, 5))
    newer = make([at(3), at(4), at(5), at(6)], [99.0, 98.0, 97.0, 96.0])
    cache.put("binance", "BTC/USDT", "5m", newer, start_ms=at(3), end_ms=at(6))  # at(6) lies outside
    stored = cache.load("binance", "BTC/USDT", "5m")
    assert stored is not None
    assert stored.time.tolist() == [at(k) for k in range(6)]
    assert stored.close.tolist() == [10.0, 11.0, 12.0, 99.0, 98.0, 97.0]
    cache.put("binance", "BTC/USDT", "5m", empty_candles())  # nothing fetched, nothing recorded
    cache.put("binance", "BTC/USDT", "5m", series(0, 1), start_ms=at(5), end_ms=at(5))
    assert cache.coverage("binance", "BTC/USDT", "5m") == [(at(0), at(6))]


def test_cache_records_an_empty_fetch_as_covered(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    cache.put("binance", "BTC/USDT", "5m", empty_candles(), start_ms=at(0), end_ms=at(10))
    assert cache.missing("binance", "BTC/USDT", "5m", at(0), at(10)) == []
    assert cache.get("binance", "BTC/USDT", "5m", at(0), at(10)) is None  # covered but no file of candles


def test_cache_seeded_with_a_freqtrade_file_covers_its_span(tmp_path: Path) -> None:
    save_candles(series(0, 10, skip=(4,)), tmp_path / "kraken" / "ETH_USDT-5m.json")
    cache = CandleCache(tmp_path)
    assert cache.coverage("kraken", "ETH/USDT", "5m") == [(at(0), at(10))]
    (tmp_path / "kraken" / "ETH_USDT-5m.coverage.json").write_text("{broken")
    assert cache.coverage("kraken", "ETH/USDT", "5m") == [(at(0), at(10))]
    assert cache.coverage("kraken", "XRP/USDT", "5m") == []


def test_cache_rejects_unsafe_keys(tmp_path: Path) -> None:
    cache = CandleCache(tmp_path)
    assert cache.path_for("binance", "BTC/USDT:USDT", "1h").name == "BTC_USDT_USDT-1h.json"
    with pytest.raises(ValueError, match="invalid exchange id"):
        cache.path_for("../etc", "BTC/USDT", "5m")
    with pytest.raises(ValueError, match="invalid symbol"):
        cache.path_for("binance", "../../x", "5m")
    with pytest.raises(ValueError, match="invalid timeframe"):
        cache.path_for("binance", "BTC/USDT", "5 minutes")

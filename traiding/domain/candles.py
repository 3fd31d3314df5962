"""OHLCV candles as columns of numpy arrays: the one in-memory form every engine module reads.

Also their files: `load_candles` reads freqtrade JSON (`[[open_time_ms, o, h, l, c, v], ...]`, also gzipped as
freqtrade's jsongz format writes it), CSV with a header, and freqtrade's feather files (with the optional
`pyarrow`: `pip install 'ai-traiding[feather]'`); `save_candles` writes JSON and CSV, `merge_candles` and
`normalize` combine and clean them. Loading never drops or reorders rows: duplicates and out-of-order rows
stay visible (`row_order` counts them, and the data-quality check), and `normalize` (sort, dedupe) runs after.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from traiding.domain.timeframes import format_time, timeframe_ms
from traiding.errors import UserError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

COLUMNS = ("time", "open", "high", "low", "close", "volume")
SUFFIXES = (".json", ".json.gz", ".csv", ".csv.gz")  # what save_candles writes
LOAD_SUFFIXES = (*SUFFIXES, ".feather")  # what load_candles reads
FEATHER_HINT = "reading feather files needs pyarrow: pip install 'ai-traiding[feather]'"

# Below this an epoch time must be in seconds: 1e11 ms is March 1973, 1e11 s is the year 5138.
_SECONDS_THRESHOLD = 1e11
_TIME_ALIASES = ("timestamp", "date", "time", "datetime", "open_time", "opentime", "open time")
_PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, eq=False)
class Candles:
    """Candles in ascending open-time order; `time` is the open time in epoch milliseconds."""

    time: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def slice(self, start: int, stop: int) -> Candles:
        return Candles(
            self.time[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )


class CandleFileError(UserError, ValueError):
    """A candle file that cannot be read, naming the file, the row and what is wrong with it."""

    def __init__(self, path: str | os.PathLike[str], detail: str, *, row: str | None = None) -> None:
        self.path = str(path)
        self.row = row
        self.detail = detail
        where = f"{self.path}: {row}: " if row else f"{self.path}: "
        super().__init__(where + detail)


def empty_candles() -> Candles:
    """Zero candles (the neutral element of `merge_candles`)."""
    floats = np.empty(0, dtype=np.float64)
    return Candles(np.empty(0, dtype=np.int64), floats, floats.copy(), floats.copy(), floats.copy(), floats.copy())


def take(candles: Candles, index: npt.NDArray[Any]) -> Candles:
    """The candles at `index` (integer positions or a boolean mask), as a new `Candles`."""
    return Candles(
        candles.time[index],
        candles.open[index],
        candles.high[index],
        candles.low[index],
        candles.close[index],
        candles.volume[index],
    )


def concat_candles(parts: Sequence[Candles]) -> Candles:
    """The rows of `parts` one after the other, unchanged (no sorting, no deduplication)."""
    if not parts:
        return empty_candles()
    return Candles(
        np.concatenate([p.time for p in parts]).astype(np.int64, copy=False),
        np.concatenate([p.open for p in parts]).astype(np.float64, copy=False),
        np.concatenate([p.high for p in parts]).astype(np.float64, copy=False),
        np.concatenate([p.low for p in parts]).astype(np.float64, copy=False),
        np.concatenate([p.close for p in parts]).astype(np.float64, copy=False),
        np.concatenate([p.volume for p in parts]).astype(np.float64, copy=False),
    )


def normalize(candles: Candles) -> Candles:
    """Sorted by time with one row per open time; of duplicate rows the later one in the input wins."""
    n = len(candles)
    if n == 0:
        return candles
    order = np.argsort(candles.time, kind="stable")
    times = candles.time[order]
    # In a stable sort the last row of each run of equal times is the latest in the input.
    keep = np.ones(n, dtype=np.bool_)
    keep[:-1] = times[1:] != times[:-1]
    if keep.all() and bool((order == np.arange(n)).all()):
        return candles
    return take(candles, order[keep])


@dataclass(frozen=True)
class RowOrder:
    """How far rows as given are from what a backtest needs (ascending times, one row per time).

    Row numbers count from 1, as a person reads a file; `None` when there is no such row.
    """

    rows: int
    duplicates: int  # rows repeating the open time of an earlier row
    first_duplicate_row: int | None
    first_duplicate_ms: int | None
    out_of_order: int  # rows whose open time is before the previous row's
    first_out_of_order_row: int | None
    first_out_of_order_ms: int | None

    @property
    def clean(self) -> bool:
        return self.duplicates == 0 and self.out_of_order == 0

    def duplicates_text(self) -> str:
        """'2 duplicate rows (same open time as an earlier row; first: row 5, 2021-01-01T00:20:00Z)', or ''."""
        if not self.duplicates or self.first_duplicate_ms is None:
            return ""
        return (
            f"{_count(self.duplicates, 'duplicate row')} (same open time as an earlier row; first: row "
            f"{self.first_duplicate_row}, {format_time(self.first_duplicate_ms)})"
        )

    def out_of_order_text(self) -> str:
        """'1 row out of time order (first: row 9, 2021-01-01T00:05:00Z)', or ''."""
        if not self.out_of_order or self.first_out_of_order_ms is None:
            return ""
        return (
            f"{_count(self.out_of_order, 'row')} out of time order (first: row {self.first_out_of_order_row}, "
            f"{format_time(self.first_out_of_order_ms)})"
        )

    def describe(self) -> str:
        return "; ".join(text for text in (self.duplicates_text(), self.out_of_order_text()) if text)


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def row_order(candles: Candles) -> RowOrder:
    """Count the duplicate and out-of-order rows and find the first of each (what `normalize` would repair)."""
    times = candles.time
    n = len(candles)
    backwards = np.flatnonzero(np.diff(times) < 0) + 1
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    repeated = order[1:][sorted_times[1:] == sorted_times[:-1]]  # the later rows of each equal-time run
    first_dup = int(repeated.min()) if repeated.size else None
    first_back = int(backwards[0]) if backwards.size else None
    return RowOrder(
        rows=n,
        duplicates=int(repeated.size),
        first_duplicate_row=None if first_dup is None else first_dup + 1,
        first_duplicate_ms=None if first_dup is None else int(times[first_dup]),
        out_of_order=int(backwards.size),
        first_out_of_order_row=None if first_back is None else first_back + 1,
        first_out_of_order_ms=None if first_back is None else int(times[first_back]),
    )


def merge_candles(older: Candles, newer: Candles) -> Candles:
    """The union of both by open time, sorted and deduplicated; where both hold a time, `newer` wins."""
    return normalize(concat_candles([older, newer]))


def candles_between(candles: Candles, start_ms: int, end_ms: int) -> Candles:
    """The candles (sorted by time) with `start_ms <= time < end_ms`."""
    lo = int(np.searchsorted(candles.time, start_ms, side="left"))
    hi = int(np.searchsorted(candles.time, end_ms, side="left"))
    return candles.slice(lo, hi)


# ---------------------------------------------------------------- loading


def load_candles(path: str | os.PathLike[str], *, check_prices: bool = True) -> Candles:
    """Read candles from freqtrade JSON, CSV (by extension: .json, .csv, optionally .gz-compressed) or feather.

    Rows keep their file order: duplicates and out-of-order rows are not dropped (see `normalize`).
    Raises `CandleFileError` naming the file and row for anything malformed: wrong column count, a value
    that is not a finite number, a timestamp that is not epoch ms/s or ISO-8601, and - with
    `check_prices` (the default) - non-positive prices, negative volume, high below low, or open/close
    outside [low, high]. With `check_prices=False` those price inconsistencies load, for the quality
    check to count.
    """
    file = Path(path)
    name = file.name.lower()
    kind = next((s for s in LOAD_SUFFIXES if name.endswith(s)), None)
    if kind is None:
        raise CandleFileError(file, f"unknown candle file type; expected a name ending in {', '.join(LOAD_SUFFIXES)}")
    try:
        if kind == ".feather":
            return _parse_feather(file, check_prices)
        with _open_text(file, kind.endswith(".gz")) as stream:
            if kind.startswith(".json"):
                return _parse_json(file, stream, check_prices)
            return _parse_csv(file, stream, check_prices)
    except FileNotFoundError:
        raise CandleFileError(file, "no such file") from None
    except IsADirectoryError:
        raise CandleFileError(file, "is a directory, not a candle file") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CandleFileError(file, f"cannot read: {exc}") from exc


def candles_from_rows(rows: Iterable[Sequence[Any]], *, source: str = "<rows>", check_prices: bool = True) -> Candles:
    """Candles from `[open_time_ms, open, high, low, close, volume]` rows, as ccxt's fetch_ohlcv returns.

    Validates like `load_candles`; errors name `source` in place of a file.
    """
    return _rows_to_candles(Path(source), list(rows), check_prices)


def _open_text(file: Path, compressed: bool) -> TextIO:
    if compressed:
        return gzip.open(file, "rt", encoding="utf-8", newline="")
    return open(file, encoding="utf-8", newline="")


def _parse_json(file: Path, stream: TextIO, check_prices: bool) -> Candles:
    try:
        data = json.load(stream)
    except json.JSONDecodeError as exc:
        where = f"(line {exc.lineno} column {exc.colno})"
        raise CandleFileError(file, f"not valid JSON: {exc.msg} {where}") from None
    if not isinstance(data, list):
        raise CandleFileError(
            file,
            f"expected a JSON array of [time, open, high, low, close, volume] rows, got a {type(data).__name__}",
        )
    return _rows_to_candles(file, data, check_prices)


def _json_row_label(index: int) -> str:
    return f"row {index + 1}"


def _rows_to_candles(file: Path, rows: list[Any], check_prices: bool) -> Candles:
    if not rows:
        raise CandleFileError(file, "holds no candles")
    try:
        table = np.asarray(rows, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != len(COLUMNS):
            raise ValueError("shape")
    except (ValueError, TypeError):
        _raise_first_bad_json_row(file, rows)
        raise  # pragma: no cover - _raise_first_bad_json_row always raises
    return _validated(file, table[:, 0], [table[:, i] for i in range(1, 6)], _json_row_label, check_prices)


def _raise_first_bad_json_row(file: Path, rows: list[Any]) -> None:
    """The vectorised conversion failed: walk the rows to name the first offending one."""
    for index, row in enumerate(rows):
        label = _json_row_label(index)
        if not isinstance(row, list):
            raise CandleFileError(
                file,
                f"expected a [time, open, high, low, close, volume] array, got {_short(row)}",
                row=label,
            )
        if len(row) != len(COLUMNS):
            raise CandleFileError(
                file,
                f"expected {len(COLUMNS)} columns (time, open, high, low, close, volume), got {len(row)}",
                row=label,
            )
        for column, value in zip(COLUMNS, row, strict=True):
            if isinstance(value, bool) or not _is_number(value):
                raise CandleFileError(file, f"not a number {_short(value)} in column {column}", row=label)
    raise CandleFileError(file, "cannot convert the rows to numbers")  # pragma: no cover - defensive


def _is_number(value: Any) -> bool:
    if value is None:
        return True  # becomes NaN and is reported as "missing" by the finite check
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _num(value: Any) -> str:
    """A number as people write it: 5.0, 19695.87, 1e-08 (not np.float64(5.0))."""
    return repr(float(value))


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_csv(file: Path, stream: TextIO, check_prices: bool) -> Candles:
    reader = csv.reader(stream)
    lines: list[int] = []
    records: list[list[str]] = []
    for record in reader:
        if not record or all(not cell.strip() for cell in record):
            continue
        records.append(record)
        lines.append(reader.line_num)
    if not records:
        raise CandleFileError(file, "holds no candles")

    header = [cell.strip().lower() for cell in records[0]]
    positions = _csv_column_positions(header)
    if positions is None:
        if len(header) == len(COLUMNS) and all(_is_float_text(cell) for cell in header):
            positions = list(range(len(COLUMNS)))  # no header: the freqtrade column order
            width = len(COLUMNS)
        else:
            raise CandleFileError(
                file,
                "the header must name the columns timestamp (or date), open, high, low, close, volume; "
                f"got {', '.join(records[0])}",
                row="line 1",
            )
    else:
        width = len(header)
        records = records[1:]
        lines = lines[1:]
    if not records:
        raise CandleFileError(file, "holds no candles (only a header)")

    def label(index: int) -> str:
        return f"row {index + 1} (line {lines[index]})"

    for index, record in enumerate(records):
        if len(record) != width:
            raise CandleFileError(file, f"expected {width} columns, got {len(record)}", row=label(index))

    times, in_ms = _csv_times(file, [r[positions[0]] for r in records], header[positions[0]], label)
    values = [
        _csv_numbers(file, [r[pos] for r in records], name, label)
        for name, pos in zip(_PRICE_COLUMNS, positions[1:], strict=True)
    ]
    return _validated(file, times, values, label, check_prices, time_in_ms=in_ms)


def _parse_feather(file: Path, check_prices: bool) -> Candles:
    """freqtrade's feather files: columns date (a UTC timestamp, or epoch ms), open, high, low, close, volume."""
    try:
        import pyarrow as pa  # noqa: PLC0415 - optional: only feather files need it
        from pyarrow import feather  # noqa: PLC0415
    except ImportError:
        raise CandleFileError(file, FEATHER_HINT) from None
    if not file.exists():
        raise FileNotFoundError(file)
    try:
        table = feather.read_table(str(file))
    except pa.ArrowException as exc:
        raise CandleFileError(file, f"not a readable feather file: {exc}") from None
    header = [name.strip().lower() for name in table.column_names]
    positions = _csv_column_positions(header)
    if positions is None:
        raise CandleFileError(
            file,
            "the columns must be date (or timestamp), open, high, low, close, volume; "
            f"got {', '.join(table.column_names)}",
        )
    if table.num_rows == 0:
        raise CandleFileError(file, "holds no candles")
    time_column = table.column(positions[0])
    in_ms: bool | None = None
    if pa.types.is_timestamp(time_column.type):
        try:
            time_column = time_column.cast(pa.timestamp("ms", time_column.type.tz)).cast(pa.int64())
        except pa.ArrowInvalid:
            problem = f"column {header[positions[0]]}: times that are not whole milliseconds"
            raise CandleFileError(file, problem) from None
        in_ms = True
    try:
        columns = [np.asarray(table.column(i).cast(pa.float64()).to_numpy(), dtype=np.float64) for i in positions[1:]]
        times = np.asarray(time_column.cast(pa.float64()).to_numpy(), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise CandleFileError(file, f"a column that is not numeric: {exc}") from None
    return _validated(file, times, columns, _json_row_label, check_prices, time_in_ms=in_ms)


def _csv_column_positions(header: list[str]) -> list[int] | None:
    time_pos = next((header.index(alias) for alias in _TIME_ALIASES if alias in header), None)
    if time_pos is None or not all(name in header for name in _PRICE_COLUMNS):
        return None
    return [time_pos, *(header.index(name) for name in _PRICE_COLUMNS)]


def _is_float_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_numbers(file: Path, cells: list[str], column: str, label: Callable[[int], str]) -> FloatArray:
    try:
        return np.asarray(cells, dtype=np.float64)
    except ValueError:
        for index, cell in enumerate(cells):
            if not _is_float_text(cell):
                what = "empty value" if not cell.strip() else f"not a number {cell!r}"
                raise CandleFileError(file, f"{what} in column {column}", row=label(index)) from None
        raise  # pragma: no cover - numpy and float() agree on what is a number


def _csv_times(
    file: Path, cells: list[str], column: str, label: Callable[[int], str]
) -> tuple[FloatArray, bool | None]:
    """Epoch numbers (unit decided later from their magnitude) or ISO-8601 texts (converted to ms)."""
    try:
        return np.asarray(cells, dtype=np.float64), None
    except ValueError:
        pass
    times = np.empty(len(cells), dtype=np.float64)
    for index, cell in enumerate(cells):
        try:
            moment = datetime.fromisoformat(cell.strip())
        except ValueError:
            raise CandleFileError(
                file,
                f"not a timestamp {cell!r} in column {column} "
                "(expected epoch milliseconds, epoch seconds or ISO-8601 such as 2021-01-01T00:00:00Z)",
                row=label(index),
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # exchanges publish UTC; a naive time means UTC
        # Whole milliseconds from the datetime fields, without float rounding.
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        times[index] = float((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)
    return times, True


def _validated(
    file: Path,
    raw_time: FloatArray,
    values: list[FloatArray],
    label: Callable[[int], str],
    check_prices: bool,
    *,
    time_in_ms: bool | None = None,
) -> Candles:
    """Vectorised checks over the whole table; only a failing check looks up which row to name.

    `time_in_ms=None` decides the unit of epoch times from their magnitude (seconds or milliseconds).
    """
    for column, array in zip(COLUMNS, [raw_time, *values], strict=True):
        bad = ~np.isfinite(array)
        if bad.any():
            index = int(np.argmax(bad))
            what = "missing value (null or NaN)" if np.isnan(array[index]) else "infinite value"
            raise CandleFileError(file, f"{what} in column {column}", row=label(index))
    if time_in_ms is None and float(np.abs(raw_time).max()) < _SECONDS_THRESHOLD:
        raw_time = np.rint(raw_time * 1000.0)  # epoch seconds
    negative = raw_time < 0
    if negative.any():
        index = int(np.argmax(negative))
        raise CandleFileError(file, f"negative timestamp {raw_time[index]:.0f}", row=label(index))
    fractional = raw_time != np.floor(raw_time)
    if fractional.any():
        index = int(np.argmax(fractional))
        raise CandleFileError(
            file, f"timestamp {_num(raw_time[index])} is not a whole number of milliseconds", row=label(index)
        )
    open_, high, low, close, volume = (np.ascontiguousarray(v, dtype=np.float64) for v in values)
    candles = Candles(raw_time.astype(np.int64), open_, high, low, close, volume)
    if check_prices:
        _check_prices(file, candles, label)
    return candles


def _check_prices(file: Path, candles: Candles, label: Callable[[int], str]) -> None:
    open_, high, low, close, volume = candles.open, candles.high, candles.low, candles.close, candles.volume

    def first(mask: npt.NDArray[np.bool_]) -> int | None:
        return int(np.argmax(mask)) if mask.any() else None

    for name, prices in (("open", open_), ("high", high), ("low", low), ("close", close)):
        if (i := first(prices <= 0)) is not None:
            raise CandleFileError(file, f"{name} {_num(prices[i])} is not a positive price", row=label(i))
    if (i := first(volume < 0)) is not None:
        raise CandleFileError(file, f"negative volume {_num(volume[i])}", row=label(i))
    if (i := first(high < low)) is not None:
        raise CandleFileError(file, f"high {_num(high[i])} below low {_num(low[i])}", row=label(i))
    for name, prices in (("open", open_), ("close", close)):
        if (i := first((prices < low) | (prices > high))) is not None:
            raise CandleFileError(
                file, f"{name} {_num(prices[i])} outside [low {_num(low[i])}, high {_num(high[i])}]", row=label(i)
            )


# ---------------------------------------------------------------- saving


def save_candles(candles: Candles, path: str | os.PathLike[str]) -> None:
    """Write candles as freqtrade JSON (or CSV with a header, by extension; .gz compresses), atomically."""
    file = Path(path)
    name = file.name.lower()
    kind = next((s for s in SUFFIXES if name.endswith(s)), None)
    if kind is None:
        raise CandleFileError(file, f"unknown candle file type; expected a name ending in {', '.join(SUFFIXES)}")
    times = candles.time.tolist()
    columns = [a.tolist() for a in (candles.open, candles.high, candles.low, candles.close, candles.volume)]
    if kind.startswith(".json"):
        # json writes floats with repr: every value reads back bit for bit.
        text = json.dumps([list(row) for row in zip(times, *columns, strict=True)], separators=(",", ":"))
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["timestamp", *_PRICE_COLUMNS])
        writer.writerows(zip(times, *(map(repr, c) for c in columns), strict=True))
        text = buffer.getvalue()
    payload = text.encode("utf-8")
    if kind.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    _write_atomically(file, payload)


def _write_atomically(file: Path, payload: bytes) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(payload)
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- cache


Interval = tuple[int, int]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class CandleCache:
    """Fetched candles on disk, one freqtrade JSON file per (exchange, symbol, timeframe).

    Layout: `ROOT/EXCHANGE/BASE_QUOTE-TIMEFRAME.json` (freqtrade's naming, so a freqtrade data folder can
    seed the cache) plus `...-TIMEFRAME.coverage.json` recording which time ranges were fetched. Coverage
    is kept apart from the candles because real data has gaps: a maintenance window inside a fetched
    range is a fact about the market, not a reason to fetch again. A data file without a coverage file
    counts as covering its first to its last candle.

    Writes are atomic (a reader never sees half a file); two writers of the same key may lose one
    update, which costs a refetch, never wrong data.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_for(self, exchange: str, symbol: str, timeframe: str) -> Path:
        timeframe_ms(timeframe)  # a ValueError naming the accepted forms
        if not _SAFE_NAME.fullmatch(exchange):
            raise ValueError(f"invalid exchange id {exchange!r} for the candle cache")
        pair = symbol.replace("/", "_").replace(":", "_")
        if not _SAFE_NAME.fullmatch(pair):
            raise ValueError(f"invalid symbol {symbol!r} for the candle cache (expected e.g. 'BTC/USDT')")
        return self.root / exchange / f"{pair}-{timeframe}.json"

    def _coverage_path(self, exchange: str, symbol: str, timeframe: str) -> Path:
        return self.path_for(exchange, symbol, timeframe).with_suffix(".coverage.json")

    def load(self, exchange: str, symbol: str, timeframe: str) -> Candles | None:
        """Everything cached for the key (sorted, one row per time), or None."""
        path = self.path_for(exchange, symbol, timeframe)
        if not path.is_file():
            return None
        return normalize(load_candles(path, check_prices=False))

    def coverage(self, exchange: str, symbol: str, timeframe: str) -> list[Interval]:
        """The fetched ranges `[start_ms, end_ms)`, sorted and disjoint."""
        try:
            data = json.loads(self._coverage_path(exchange, symbol, timeframe).read_text(encoding="utf-8"))
            return union_intervals([(int(start), int(end)) for start, end in data["covered"]])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no or unreadable coverage file: derive it from the candles
        candles = self.load(exchange, symbol, timeframe)
        if candles is None or len(candles) == 0:
            return []
        return [(int(candles.time[0]), int(candles.time[-1]) + timeframe_ms(timeframe))]

    def missing(self, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> list[Interval]:
        """The parts of `[start_ms, end_ms)` not fetched yet, aligned to candle open times."""
        return uncovered(self.coverage(exchange, symbol, timeframe), start_ms, end_ms, timeframe_ms(timeframe))

    def drop(self, exchange: str, symbol: str, timeframe: str) -> None:
        """Forget everything cached for the key."""
        for path in (self.path_for(exchange, symbol, timeframe), self._coverage_path(exchange, symbol, timeframe)):
            path.unlink(missing_ok=True)

    def get(self, exchange: str, symbol: str, timeframe: str, start_ms: int, end_ms: int) -> Candles | None:
        """The cached candles opening in `[start_ms, end_ms)` if that whole range was fetched, else None."""
        if self.missing(exchange, symbol, timeframe, start_ms, end_ms):
            return None
        candles = self.load(exchange, symbol, timeframe)
        if candles is None:
            return None
        return candles_between(candles, start_ms, end_ms)

    def put(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        candles: Candles,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> None:
        """Add fetched candles; `[start_ms, end_ms)` is the range that was asked for (default: the candles' own).

        Pass only closed candles: an unfinished last candle would be cached as if final. Candles outside the
        range are dropped; where the cache already holds a time, the new candle wins.
        """
        step = timeframe_ms(timeframe)
        fresh = normalize(candles)
        if start_ms is None or end_ms is None:
            if len(fresh) == 0:
                return
            start_ms = int(fresh.time[0]) if start_ms is None else start_ms
            end_ms = int(fresh.time[-1]) + step if end_ms is None else end_ms
        if start_ms >= end_ms:
            return
        fresh = candles_between(fresh, start_ms, end_ms)
        path = self.path_for(exchange, symbol, timeframe)
        covered = self.coverage(exchange, symbol, timeframe)
        stored = self.load(exchange, symbol, timeframe)
        merged = fresh if stored is None else merge_candles(stored, fresh)
        if len(merged):
            save_candles(merged, path)
        record = {
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "covered": [list(i) for i in union_intervals([*covered, (start_ms, end_ms)])],
        }
        _write_atomically(
            self._coverage_path(exchange, symbol, timeframe), json.dumps(record, indent=1).encode("utf-8")
        )


def uncovered(coverage: Iterable[Interval], start_ms: int, end_ms: int, step: int) -> list[Interval]:
    """The parts of `[start_ms, end_ms)` outside `coverage` (sorted, disjoint), aligned to `step` (candle open
    times): what is left to fetch."""
    want_start, want_end = _ceil_to(start_ms, step), _ceil_to(end_ms, step)
    if want_start >= want_end:
        return []
    gaps: list[Interval] = []
    cursor = want_start
    for start, end in coverage:
        if end <= cursor:
            continue
        if start >= want_end:
            break
        if start > cursor:
            gaps.append((cursor, _ceil_to(start, step)))
        cursor = max(cursor, end)
        if cursor >= want_end:
            break
    if cursor < want_end:
        gaps.append((cursor, want_end))
    return [(s, e) for s, e in gaps if s < e]


def _ceil_to(value: int, step: int) -> int:
    return -(-value // step) * step


def union_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of `[start, end)` intervals, sorted and disjoint (touching ones merged)."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged

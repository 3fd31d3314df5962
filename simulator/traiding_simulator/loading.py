"""Build the replayed `Market` from the configuration: candle files, a folder of them, or a synthetic market.

A folder is read as a freqtrade data directory: every file named like `BTC_USDT-5m.json` (also `.json.gz`,
`.csv`, `.csv.gz`, `.feather`). The bundled candles (`traiding.data`) are such a folder.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from traiding.data import BUNDLED_CANDLES
from traiding.domain.candle_files import find_candle_files, parse_candle_file_name
from traiding.domain.candles import CandleFileError, Candles, load_candles, row_order
from traiding.domain.timeframes import format_time
from traiding.errors import UserError
from traiding_simulator.config import DataSource, SimulatorConfig
from traiding_simulator.market import (
    DAY_MS,
    INTERVAL_MS,
    Market,
    Series,
    SymbolMarket,
    parse_symbol,
    shift,
    synthetic_candles,
)


class DataError(UserError, ValueError):
    """A data source the simulator cannot replay; the message names the file and the fix."""


def bundled_sources() -> list[DataSource]:
    """The candles that ship with the package (BTC/USDT and ETH/USDT at 5m and 1h)."""
    return [DataSource(path=BUNDLED_CANDLES)]


def expand_sources(sources: list[DataSource]) -> list[DataSource]:
    """Folders become one source per candle file named like BTC_USDT-5m.json; intervals come from names."""
    expanded: list[DataSource] = []
    for source in sources:
        if source.path.is_dir():
            try:
                files = find_candle_files(source.path)
            except CandleFileError as exc:
                raise DataError(str(exc)) from None
            if not files:
                raise DataError(f"{source.path}: holds no candle files named like BTC_USDT-5m.json")
            expanded.extend(DataSource(symbol=f.symbol, path=f.path, interval=f.timeframe) for f in files)
            continue
        named = parse_candle_file_name(source.path)
        symbol = source.symbol or (named.symbol if named else None)
        interval = source.interval or (named.timeframe if named else None)
        if symbol is None or interval is None:
            raise DataError(
                f"{source.path}: cannot tell the symbol and interval from the file name; name it like "
                f"BTC_USDT-5m.json or give them explicitly (BTC/USDT=PATH@5m)"
            )
        parse_symbol(symbol)
        expanded.append(DataSource(symbol=symbol.upper(), path=source.path, interval=interval))
    return expanded


def parse_data_argument(text: str) -> DataSource:
    """`BTC/USDT=path[@5m]` or a bare path (file named like BTC_USDT-5m.json, or a folder of such files)."""
    symbol, sep, rest = text.partition("=")
    if not sep:
        return DataSource(path=Path(text))
    path_text, at, interval = rest.rpartition("@") if "@" in rest else (rest, "", "")
    parse_symbol(symbol)
    return DataSource(symbol=symbol.upper(), path=Path(path_text), interval=interval if at else None)


@functools.lru_cache(maxsize=64)
def _load_cached(path: Path, mtime_ns: int, size: int) -> Candles:
    return load_candles(path)


def load_file(path: Path) -> Candles:
    """`load_candles`, memoised per file version: tests and restarts do not parse the same file twice.

    The replay needs one candle per time in ascending order. A file with duplicate or out-of-order rows is
    refused, saying how many and where the first is, rather than repaired behind the user's back.
    """
    resolved = path.resolve()
    stat = resolved.stat()
    candles = _load_cached(resolved, stat.st_mtime_ns, stat.st_size)
    order = row_order(candles)
    if not order.clean:
        raise DataError(
            f"{path}: {order.describe()}; the simulator replays one candle per time in ascending order, "
            "so sort the file and keep one row per time (`traiding backtest --data FILE` reports the same)"
        )
    return candles


@dataclass(frozen=True)
class Replay:
    """The replayed market, where its replay starts, and by how much its candles were shifted (ms, whole days)."""

    market: Market
    start_ms: int
    shift_ms: int = 0


def build_market(config: SimulatorConfig, wall_now_ms: int | None = None) -> Replay:
    """The market and the replay start. With `align_to_wall_clock` every candle time is shifted by the same whole
    number of days, so the replay runs on the wall clock's date and intervals up to a day stay aligned: a start
    given in the data keeps its time of day on the last day that is not after `wall_now_ms` (the window stays
    exactly the one asked for); without one the replay starts at `wall_now_ms` itself, at most a day after the
    default point in the data, or before it where that would be past the data's end (then the replay clock and
    the wall clock agree to the millisecond). `shift_days` shifts by exactly that many days instead."""
    series_by_symbol: dict[str, list[Series]] = defaultdict(list)
    if config.data:
        for source in expand_sources(config.data):
            if source.interval not in INTERVAL_MS:
                raise DataError(f"{source.path}: interval {source.interval!r} is not one of {', '.join(INTERVAL_MS)}")
            if not source.path.is_file():
                raise DataError(f"{source.path}: no such candle file")
            candles = load_file(source.path)
            assert source.symbol is not None  # nosec B101  # expand_sources fills it in
            series_by_symbol[source.symbol].append(Series(INTERVAL_MS[source.interval], candles))
    else:
        interval_ms = INTERVAL_MS[config.synthetic_interval]
        count = config.synthetic_days * DAY_MS // interval_ms
        for index, (symbol, price) in enumerate(sorted(config.synthetic_symbols.items())):
            base, _ = parse_symbol(symbol)
            candles = synthetic_candles(
                base, price, count=count, interval_ms=interval_ms, seed=config.seed, index=index
            )
            series_by_symbol[symbol.upper()].append(Series(interval_ms, candles))
    market = Market(SymbolMarket(symbol, series) for symbol, series in series_by_symbol.items())
    start = _replay_start(config, market)
    if config.shift_days is not None:
        offset = config.shift_days * DAY_MS
    elif not config.align_to_wall_clock or wall_now_ms is None:
        return Replay(market, start)
    else:
        offset = ((wall_now_ms - start) // DAY_MS) * DAY_MS
        if config.start is None:
            if wall_now_ms - offset >= market.end_ms:
                offset += DAY_MS  # the default point is less than a day from the end: start up to a day before it
            start = wall_now_ms - offset
    shifted = {
        s.symbol: [Series(i, shift(s.series_for(i).candles, offset)) for i in s.intervals]  # type: ignore[union-attr]
        for s in market.by_id.values()
    }
    market = Market(SymbolMarket(symbol, series) for symbol, series in shifted.items())
    return Replay(market, start + offset, offset)


def _replay_start(config: SimulatorConfig, market: Market) -> int:
    """The configured start, which must lie in the data; by default `start_fraction` (80%) through its span."""
    if config.start is None:
        return market.first_ms + int((market.end_ms - market.first_ms) * config.start_fraction)
    if isinstance(config.start, int):
        start_ms = config.start
    else:
        moment = config.start if config.start.tzinfo is not None else config.start.replace(tzinfo=UTC)
        start_ms = int(moment.timestamp() * 1000)
    if not market.first_ms <= start_ms < market.end_ms:
        raise DataError(
            f"replay start {format_time(start_ms)} is outside the data, which runs from "
            f"{format_time(market.first_ms)} to {format_time(market.end_ms)}"
        )
    return start_ms

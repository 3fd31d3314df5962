"""Build the replayed `Market` from the configuration: candle files, a folder of them, or a synthetic market."""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import UTC
from pathlib import Path

from traiding.domain.candles import Candles, load_candles
from traiding_simulator.config import DataSource, SimulatorConfig
from traiding_simulator.market import (
    DAY_MS,
    INTERVAL_MS,
    Market,
    Series,
    SymbolMarket,
    parse_symbol,
    shift,
    symbol_from_file_name,
    synthetic_candles,
)


class DataError(ValueError):
    """A data source the simulator cannot replay; the message names the file and the fix."""


def expand_sources(sources: list[DataSource]) -> list[DataSource]:
    """Folders become one source per candle file named like BTC_USDT-5m.json; intervals come from names."""
    expanded: list[DataSource] = []
    for source in sources:
        if source.path.is_dir():
            for path in sorted(source.path.iterdir()):
                named = symbol_from_file_name(path)
                if named is not None and path.suffix in {".json", ".csv"}:
                    expanded.append(DataSource(symbol=named[0], path=path, interval=named[1]))
            continue
        named = symbol_from_file_name(source.path)
        symbol = source.symbol or (named[0] if named else None)
        interval = source.interval or (named[1] if named else None)
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
    """`load_candles`, memoised per file version: tests and restarts do not parse the same file twice."""
    resolved = path.resolve()
    stat = resolved.stat()
    return _load_cached(resolved, stat.st_mtime_ns, stat.st_size)


def build_market(config: SimulatorConfig, wall_now_ms: int | None = None) -> tuple[Market, int]:
    """The market and the replay start (ms). With align_to_wall_clock, candle times are shifted by whole
    days so that the replay starts at `wall_now_ms`."""
    series_by_symbol: dict[str, list[Series]] = defaultdict(list)
    if config.data:
        for source in expand_sources(config.data):
            if source.interval not in INTERVAL_MS:
                raise DataError(f"{source.path}: interval {source.interval!r} is not one of {', '.join(INTERVAL_MS)}")
            if not source.path.is_file():
                raise DataError(f"{source.path}: no such candle file")
            candles = load_file(source.path)
            assert source.symbol is not None  # expand_sources fills it in
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
    if config.align_to_wall_clock and wall_now_ms is not None:
        offset = ((wall_now_ms - start) // DAY_MS) * DAY_MS
        shifted = {
            s.symbol: [Series(i, shift(s.series_for(i).candles, offset)) for i in s.intervals]  # type: ignore[union-attr]
            for s in market.by_id.values()
        }
        market = Market(SymbolMarket(symbol, series) for symbol, series in shifted.items())
        start = wall_now_ms
    return market, start


def _replay_start(config: SimulatorConfig, market: Market) -> int:
    if config.start is None:
        return market.first_ms + int((market.end_ms - market.first_ms) * config.start_fraction)
    if isinstance(config.start, int):
        return config.start
    start = config.start if config.start.tzinfo is not None else config.start.replace(tzinfo=UTC)
    return int(start.timestamp() * 1000)

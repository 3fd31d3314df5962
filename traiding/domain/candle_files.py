"""Candle files named as freqtrade names them: `BASE_QUOTE-TIMEFRAME.FORMAT`, e.g. `BTC_USDT-5m.json.gz`.

A freqtrade data directory (`user_data/data/binance`) holds one file per pair and timeframe, as json, jsongz
(`.json.gz`) or feather; `find_candle_files` lists them, so such a folder can be pointed at as it is. Files
in it that are not spot candles of one pair (futures candles such as `BTC_USDT_USDT-5m-futures.feather`,
trades, notes) do not match the name and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from traiding.domain.candles import LOAD_SUFFIXES, CandleFileError
from traiding.domain.timeframes import timeframe_ms

_NAME = re.compile(r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)-(?P<timeframe>\d+[mhdw])(?P<suffix>(?:\.\w+)+)$")


@dataclass(frozen=True)
class CandleFile:
    """One pair's candles at one timeframe, as a file."""

    symbol: str  # ccxt form, BTC/USDT
    timeframe: str  # 5m, 1h, ...
    path: Path

    @property
    def name(self) -> str:
        """`BTC_USDT-5m`: the file's name without its format, as freqtrade calls a pair's data."""
        return f"{self.symbol.replace('/', '_')}-{self.timeframe}"


def parse_candle_file_name(path: Path) -> CandleFile | None:
    """The pair and timeframe a name like `BTC_USDT-5m.json` says; None when the name is not one of those."""
    match = _NAME.match(path.name)
    if match is None or match["suffix"].lower() not in LOAD_SUFFIXES:
        return None
    return CandleFile(f"{match['base'].upper()}/{match['quote'].upper()}", match["timeframe"], path)


def find_candle_files(folder: Path) -> list[CandleFile]:
    """The candle files directly in `folder` (sorted by pair, then timeframe); two files for one pair and
    timeframe (`BTC_USDT-5m.json` beside `BTC_USDT-5m.feather`) are refused rather than one picked."""
    if not folder.is_dir():
        raise CandleFileError(folder, "no such folder")
    found: dict[tuple[str, str], CandleFile] = {}
    for path in sorted(folder.iterdir()):
        candle_file = parse_candle_file_name(path) if path.is_file() else None
        if candle_file is None:
            continue
        key = (candle_file.symbol, candle_file.timeframe)
        if key in found:
            raise CandleFileError(
                folder,
                f"holds {found[key].path.name} and {path.name}: two files for {key[0]} {key[1]}; keep one",
            )
        found[key] = candle_file
    return sorted(found.values(), key=lambda f: (f.symbol, timeframe_ms(f.timeframe)))

"""Real candles that ship with the package, so the main job works on a fresh clone or after `pip install`.

`candles/` holds Binance spot candles of BTC/USDT and ETH/USDT at 5m and 1h (source, span, gaps and licence
in candles/README.md), as freqtrade's jsongz files in a folder laid out like a freqtrade data directory.
"""

from __future__ import annotations

from pathlib import Path

from traiding.domain.candle_files import CandleFile, find_candle_files

BUNDLED_CANDLES = Path(__file__).resolve().parent / "candles"


def bundled_candle_files() -> list[CandleFile]:
    """Every bundled candle file, sorted by pair and timeframe."""
    return find_candle_files(BUNDLED_CANDLES)


def bundled_summary() -> str:
    """'BTC/USDT, ETH/USDT at 5m, 1h': what the bundled set holds, for messages."""
    files = bundled_candle_files()
    symbols = ", ".join(dict.fromkeys(f.symbol for f in files))
    timeframes = ", ".join(dict.fromkeys(f.timeframe for f in files))
    return f"{symbols} at {timeframes}"

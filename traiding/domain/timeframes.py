"""Timeframes ("5m", "1h") and durations ("30d", "4h45m") as milliseconds, and back to text.

Timeframes follow ccxt's notation: a positive integer and one unit, where `m` is minutes and `M` months
(30 days, as ccxt counts them). Durations accept the same units plus `ms`, and several parts in
descending order ("1d12h", "4h45m"), so every text `format_duration` writes parses back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
MONTH_MS = 30 * DAY_MS  # ccxt's convention for "1M"
YEAR_MS = 365 * DAY_MS

# Units from the largest to the smallest: the order compound durations must follow.
UNIT_MS: dict[str, int] = {
    "y": YEAR_MS,
    "M": MONTH_MS,
    "w": WEEK_MS,
    "d": DAY_MS,
    "h": HOUR_MS,
    "m": MINUTE_MS,
    "s": SECOND_MS,
    "ms": 1,
}
_UNIT_ORDER = list(UNIT_MS)
_UNIT_NAMES = "s (seconds), m (minutes), h (hours), d (days), w (weeks), M (30-day months), y (365-day years)"

_TIMEFRAME_RE = re.compile(r"(\d+)(s|m|h|d|w|M|y)")
_DURATION_PART_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)")


def timeframe_ms(timeframe: str) -> int:
    """The length of one candle of `timeframe` ("1m", "5m", "1h", "4h", "1d", "1w", "1M") in milliseconds."""
    text = timeframe.strip() if isinstance(timeframe, str) else timeframe
    match = _TIMEFRAME_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"invalid timeframe {timeframe!r}: expected a positive integer followed by one unit, "
            f"e.g. '1m', '5m', '15m', '1h', '4h', '1d', '1w'; units: {_UNIT_NAMES}"
        )
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def duration_ms(duration: str) -> int:
    """A positive duration such as "30d", "12h", "90s", "15m", "500ms" or "1d12h" in milliseconds."""
    text = duration.strip() if isinstance(duration, str) else None
    total = 0
    if text:
        position = 0
        last_unit_index = -1
        for match in _DURATION_PART_RE.finditer(text):
            unit_index = _UNIT_ORDER.index(match.group(2))
            if match.start() != position or unit_index <= last_unit_index:
                total = 0
                break
            position = match.end()
            last_unit_index = unit_index
            total += int(match.group(1)) * UNIT_MS[match.group(2)]
        if position != len(text):
            total = 0
    if total <= 0:
        raise ValueError(
            f"invalid duration {duration!r}: expected a positive integer with a unit, e.g. '90s', '15m', "
            f"'12h', '30d', or several parts from the largest unit down, e.g. '1d12h', '4h45m'; "
            f"units: ms (milliseconds), {_UNIT_NAMES}"
        )
    return total


def duration_timedelta(duration: str) -> timedelta:
    """`duration_ms` as a `timedelta`."""
    return timedelta(milliseconds=duration_ms(duration))


def format_duration(ms: int) -> str:
    """A compact text for `ms` milliseconds ("4h45m", "1d", "0s"); weeks and longer are written in days."""
    if ms < 0:
        return "-" + format_duration(-ms)
    if ms == 0:
        return "0s"
    parts: list[str] = []
    remaining = int(ms)
    for unit in ("d", "h", "m", "s", "ms"):
        count, remaining = divmod(remaining, UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_time(ms: int) -> str:
    """An epoch-millisecond time as ISO-8601 UTC, e.g. "2021-02-21T03:05:00Z"."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


_TIMERANGE_POINT = r"(\d{8}|\d{10}|\d{13})"
_TIMERANGE_RE = re.compile(rf"^{_TIMERANGE_POINT}?-{_TIMERANGE_POINT}?$")


def parse_timerange(text: str) -> tuple[int | None, int | None]:
    """freqtrade's `--timerange START-END` as epoch ms (None: open end); candles with START <= open <= END count.

    Each end is a UTC date YYYYMMDD, epoch seconds (10 digits) or epoch ms (13 digits); either may be left out
    (`20210101-`, `-20210301`), not both. The end is inclusive, as in freqtrade.
    """
    match = _TIMERANGE_RE.fullmatch(text.strip())
    if match is None or (match.group(1) is None and match.group(2) is None):
        raise ValueError(
            f"invalid timerange {text!r}: expected START-END as freqtrade writes it, e.g. 20210101-20210301, "
            "20210101- or -20210301 (dates YYYYMMDD in UTC, or epoch seconds or milliseconds)"
        )
    start, end = (_timerange_point(match.group(i)) for i in (1, 2))
    if start is not None and end is not None and end < start:
        raise ValueError(f"invalid timerange {text!r}: the end is before the start")
    return start, end


def _timerange_point(text: str | None) -> int | None:
    if text is None:
        return None
    if len(text) == 8:
        try:
            moment = datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"invalid timerange date {text!r}: expected YYYYMMDD, e.g. 20210101") from None
        return int(moment.timestamp()) * SECOND_MS
    return int(text) * (SECOND_MS if len(text) == 10 else 1)

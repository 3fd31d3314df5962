from __future__ import annotations

from datetime import timedelta

import pytest

from traiding.domain.timeframes import (
    duration_ms,
    duration_timedelta,
    format_duration,
    format_time,
    parse_timerange,
    timeframe_ms,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1s", 1_000),
        ("1m", 60_000),
        ("5m", 5 * 60_000),
        ("15m", 15 * 60_000),
        ("1h", 3_600_000),
        ("4h", 4 * 3_600_000),
        ("1d", 86_400_000),
        ("3d", 3 * 86_400_000),
        ("1w", 7 * 86_400_000),
        ("1M", 30 * 86_400_000),
        (" 5m ", 5 * 60_000),
    ],
)
def test_timeframe_ms_parses_ccxt_notation(text: str, expected: int) -> None:
    assert timeframe_ms(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m", "0m", "5 m", "5min", "1h30m", "-5m", "1.5h", "5x", "500ms"])
def test_timeframe_ms_rejects_other_forms_and_lists_the_accepted_ones(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid timeframe") as caught:
        timeframe_ms(text)
    message = str(caught.value)
    assert repr(text) in message
    for example in ("'1m'", "'5m'", "'1h'", "'1d'"):
        assert example in message


def test_timeframe_ms_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="invalid timeframe"):
        timeframe_ms(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", 30 * 86_400_000),
        ("12h", 12 * 3_600_000),
        ("90s", 90_000),
        ("15m", 15 * 60_000),
        ("500ms", 500),
        ("2w", 14 * 86_400_000),
        ("1y", 365 * 86_400_000),
        ("1d12h", 36 * 3_600_000),
        ("4h45m", (4 * 60 + 45) * 60_000),
        ("1h0m30s", 3_630_000),
    ],
)
def test_duration_ms(text: str, expected: int) -> None:
    assert duration_ms(text) == expected
    assert duration_timedelta(text) == timedelta(milliseconds=expected)


@pytest.mark.parametrize("text", ["", "0s", "30", "d", "12 h", "30m1h", "1h1h", "1.5h", "1h-5m", "abc", "5mm"])
def test_duration_ms_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as caught:
        duration_ms(text)
    assert "'1d12h'" in str(caught.value)
    assert "ms (milliseconds)" in str(caught.value)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (500, "500ms"),
        (90_000, "1m30s"),
        ((4 * 60 + 45) * 60_000, "4h45m"),
        (86_400_000, "1d"),
        (8 * 86_400_000 + 3_600_000, "8d1h"),
        (-60_000, "-1m"),
    ],
)
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@pytest.mark.parametrize("ms", [1, 999, 1_000, 61_001, 3_600_000 * 30 + 7, 86_400_000 * 400])
def test_format_duration_round_trips_through_duration_ms(ms: int) -> None:
    assert duration_ms(format_duration(ms)) == ms


def test_format_time_is_iso_utc() -> None:
    assert format_time(1_606_780_800_000) == "2020-12-01T00:00:00Z"
    assert format_time(1_606_780_800_123) == "2020-12-01T00:00:00.123Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20210101-20210301", (1_609_459_200_000, 1_614_556_800_000)),
        ("20210101-", (1_609_459_200_000, None)),
        ("-20210301", (None, 1_614_556_800_000)),
        ("1609459200-1614556800", (1_609_459_200_000, 1_614_556_800_000)),  # epoch seconds
        ("1609459200000-", (1_609_459_200_000, None)),  # epoch milliseconds
    ],
)
def test_timeranges_in_freqtrades_syntax(text: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_timerange(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("-", "expected START-END"),
        ("2021-01-01", "expected START-END"),
        ("20210101", "expected START-END"),
        ("20211301-", "invalid timerange date '20211301'"),
        ("20210301-20210101", "the end is before the start"),
    ],
)
def test_bad_timeranges_say_what_is_expected(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_timerange(text)

"""The replayed market: price path inside a candle, no look-ahead, partial candles, gaps, aggregation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from traiding.domain.candles import Candles
from traiding_simulator.market import (
    HOUR_MS,
    MINUTE_MS,
    WEEK_MS,
    Series,
    SymbolMarket,
    aggregate,
    fmt_number,
    synthetic_candles,
)

T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS  # an hour boundary
FIVE_MIN = 5 * MINUTE_MS


def make_candles(rows: list[tuple[int, float, float, float, float, float]]) -> Candles:
    arr = np.array(rows, dtype=np.float64)
    return Candles(arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5])


@pytest.fixture
def btc() -> SymbolMarket:
    # 4 five-minute candles, then a 10-minute gap, then one more
    rows = [
        (T0, 100.0, 110.0, 95.0, 105.0, 10.0),  # rising: open -> low -> high -> close
        (T0 + FIVE_MIN, 105.0, 106.0, 90.0, 92.0, 20.0),  # falling: open -> high -> low -> close
        (T0 + 2 * FIVE_MIN, 92.0, 93.0, 91.0, 93.0, 5.0),
        (T0 + 3 * FIVE_MIN, 93.0, 94.0, 92.0, 94.0, 5.0),
        (T0 + 6 * FIVE_MIN, 96.0, 97.0, 95.0, 96.5, 7.0),
    ]
    return SymbolMarket("BTC/USDT", [Series(FIVE_MIN, make_candles(rows))])


INTERVAL = {FIVE_MIN: "5m", 15 * MINUTE_MS: "15m", HOUR_MS: "1h", MINUTE_MS: "1m"}


def klines(
    symbol: SymbolMarket,
    interval_ms: int | str,
    now: int,
    *,
    start: int | None = None,
    end: int | None = None,
    limit: int = 500,
) -> list[list[object]]:
    interval = interval_ms if isinstance(interval_ms, str) else INTERVAL[interval_ms]
    rows: list[list[object]] = json.loads(symbol.klines_json(interval, start, end, limit, now))
    return rows


def test_price_follows_the_path_inside_a_rising_and_a_falling_candle(btc: SymbolMarket) -> None:
    assert btc.price_at(T0) == 100.0
    assert btc.price_at(T0 + FIVE_MIN // 3) == 95.0  # rising candle visits its low first
    assert btc.price_at(T0 + 2 * FIVE_MIN // 3) == 110.0
    assert btc.price_at(T0 + FIVE_MIN + FIVE_MIN // 3) == 106.0  # falling candle visits its high first
    assert btc.price_at(T0 + FIVE_MIN + 2 * FIVE_MIN // 3) == 90.0
    # halfway between open (100) and the low (95) at a sixth of the candle
    assert btc.price_at(T0 + FIVE_MIN // 6) == pytest.approx(97.5)


def test_price_before_data_in_a_gap_and_after_the_end(btc: SymbolMarket) -> None:
    assert btc.price_at(T0 - HOUR_MS) == 100.0
    assert btc.price_at(T0 + 5 * FIVE_MIN) == 94.0  # in the gap: the last close
    assert btc.price_at(T0 + 100 * FIVE_MIN) == 96.5


def test_klines_never_show_candles_that_open_after_now(btc: SymbolMarket) -> None:
    rows = klines(btc, FIVE_MIN, now=T0 + FIVE_MIN + 1)
    assert [r[0] for r in rows] == [T0, T0 + FIVE_MIN]
    rows = klines(btc, FIVE_MIN, now=T0 + 100 * FIVE_MIN, start=T0, end=T0 + 100 * FIVE_MIN)
    assert [r[0] for r in rows] == [T0 + i * FIVE_MIN for i in (0, 1, 2, 3, 6)]  # the gap stays a gap


def test_the_current_candle_is_partial_and_complete_ones_are_exact(btc: SymbolMarket) -> None:
    now = T0 + FIVE_MIN + FIVE_MIN // 2  # half through the falling candle: past its high, on the way to the low
    first, current = klines(btc, FIVE_MIN, now=now)
    assert first[1:6] == ["100.00000000", "110.00000000", "95.00000000", "105.00000000", "10.00000000"]
    assert first[6] == T0 + FIVE_MIN - 1
    o, h, lo, c, v = (float(x) for x in current[1:6])  # type: ignore[arg-type]
    assert o == 105.0 and h == 106.0
    assert c == pytest.approx(btc.price_at(now))
    assert lo == pytest.approx(c) and 90.0 < c < 106.0
    assert v == pytest.approx(10.0)  # half of 20


def test_klines_start_end_and_limit_select_like_binance(btc: SymbolMarket) -> None:
    now = T0 + HOUR_MS
    assert [r[0] for r in klines(btc, FIVE_MIN, now=now, start=T0 + 1, limit=2)] == [T0 + FIVE_MIN, T0 + 2 * FIVE_MIN]
    assert [r[0] for r in klines(btc, FIVE_MIN, now=now, limit=2)] == [T0 + 3 * FIVE_MIN, T0 + 6 * FIVE_MIN]
    assert [r[0] for r in klines(btc, FIVE_MIN, now=now, end=T0 + FIVE_MIN, limit=10)] == [T0, T0 + FIVE_MIN]
    assert klines(btc, FIVE_MIN, now=now, start=T0 + 4 * FIVE_MIN, end=T0 + 5 * FIVE_MIN) == []


def test_longer_intervals_are_aggregated_from_the_finest_series(btc: SymbolMarket) -> None:
    (hour,) = klines(btc, HOUR_MS, now=T0 + 2 * HOUR_MS)
    assert hour[0] == T0
    assert [float(x) for x in hour[1:6]] == [100.0, 110.0, 90.0, 96.5, 47.0]  # type: ignore[arg-type]
    fifteen = klines(btc, 15 * MINUTE_MS, now=T0 + 2 * HOUR_MS)
    assert [r[0] for r in fifteen] == [T0, T0 + 3 * FIVE_MIN, T0 + 6 * FIVE_MIN]


def test_a_partial_aggregated_candle_uses_only_what_has_happened(btc: SymbolMarket) -> None:
    now = T0 + 2 * FIVE_MIN  # two five-minute candles closed
    (hour,) = klines(btc, HOUR_MS, now=now)
    assert [float(x) for x in hour[1:5]] == [100.0, 110.0, 90.0, 92.0]  # type: ignore[arg-type]
    assert float(hour[5]) == pytest.approx(30.0)  # type: ignore[arg-type]


def test_weekly_candles_open_on_monday() -> None:
    monday = 1_704_067_200_000 - 1_704_067_200_000 % WEEK_MS + 4 * 86_400_000  # some Monday 00:00 UTC
    rows = [(monday + i * 86_400_000, 1.0, 2.0, 0.5, 1.5, 1.0) for i in range(10)]
    weekly = aggregate(make_candles(rows), WEEK_MS)
    assert weekly.time.tolist() == [monday, monday + WEEK_MS]
    assert weekly.volume.tolist() == [7.0, 3.0]


def test_path_range_covers_extremes_between_two_times(btc: SymbolMarket) -> None:
    assert btc.path_range(T0, T0 + 3 * FIVE_MIN) == (90.0, 110.0)
    low, high = btc.path_range(T0 + 2 * FIVE_MIN, T0 + 2 * FIVE_MIN + FIVE_MIN // 2)
    assert low == 91.0 and high == pytest.approx(btc.price_at(T0 + 2 * FIVE_MIN + FIVE_MIN // 2))


def test_numbers_are_written_as_binance_writes_them_prices_on_the_tick() -> None:
    for value in (29000.01, 1.23456789, 794.500517, 12345678.12345678):
        assert float(fmt_number(value)) == value  # what the data holds comes back exactly
    assert fmt_number(0.1 + 0.2) == "0.30000000"  # never more than the symbol's 8 decimals
    assert fmt_number(29000.0149, 2) == "29000.01000000"  # a price: on the tick


def test_a_price_off_the_tick_in_the_data_is_served_on_the_tick() -> None:
    rows = [(T0, 100.004, 110.0, 94.996, 105.0, 10.0), (T0 + FIVE_MIN, 105.0, 106.0, 104.0, 105.5, 1.0)]
    symbol = SymbolMarket("BTC/USDT", [Series(FIVE_MIN, make_candles(rows))])  # BTC/USDT: tick 0.01
    first, _ = klines(symbol, FIVE_MIN, now=T0 + 2 * FIVE_MIN)
    assert first[1:4] == ["100.00000000", "110.00000000", "95.00000000"]
    assert symbol.price_text(symbol.price_at(T0 + FIVE_MIN // 6)) == "97.50000000"


def test_one_second_klines_are_read_off_the_path_inside_the_data_candles(btc: SymbolMarket) -> None:
    rows = klines(btc, "1s", now=T0 + HOUR_MS, start=T0, limit=1000)
    assert len(rows) == 1000 and [r[0] for r in rows[:3]] == [T0, T0 + 1000, T0 + 2000]
    assert all(r[6] == r[0] + 999 for r in rows)  # type: ignore[operator]
    for row in rows[::97]:
        t = int(row[0])  # type: ignore[call-overload]
        assert float(row[1]) == pytest.approx(btc.price_at(t), abs=0.005)  # type: ignore[arg-type]
        volume = float(btc.base.candles.volume[btc.path.locate(t)])
        assert float(row[5]) == pytest.approx(volume / 300, abs=1e-8)  # type: ignore[arg-type]  # pro rata
    # the 300 seconds of the first candle add up to it
    whole = klines(btc, "1s", now=T0 + HOUR_MS, start=T0, end=T0 + FIVE_MIN - 1, limit=1000)
    assert len(whole) == 300
    assert max(float(r[2]) for r in whole) == 110.0 and min(float(r[3]) for r in whole) == 95.0  # type: ignore[arg-type]
    assert float(whole[-1][4]) == 105.0  # type: ignore[arg-type]
    # gaps stay gaps; the newest ones without a start; nothing after now
    in_gap = klines(btc, "1s", now=T0 + HOUR_MS, start=T0 + 4 * FIVE_MIN, end=T0 + 6 * FIVE_MIN - 1)
    assert in_gap == []
    latest = klines(btc, "1s", now=T0 + 6 * FIVE_MIN + 2500, limit=3)
    assert [r[0] for r in latest] == [T0 + 6 * FIVE_MIN, T0 + 6 * FIVE_MIN + 1000, T0 + 6 * FIVE_MIN + 2000]


def test_monthly_klines_are_calendar_months() -> None:
    jan_1 = 1_704_067_200_000  # 2024-01-01T00:00Z
    rows = [(jan_1 + i * 86_400_000, 1.0 + i, 2.0 + i, 0.5, 1.5 + i, 1.0) for i in range(40)]
    symbol = SymbolMarket("BTC/USDT", [Series(86_400_000, make_candles(rows))])
    january, february = klines(symbol, "1M", now=jan_1 + 40 * 86_400_000)
    feb_1 = jan_1 + 31 * 86_400_000
    assert (january[0], january[6], february[0]) == (jan_1, feb_1 - 1, feb_1)
    assert [float(x) for x in january[1:6]] == [1.0, 32.0, 0.5, 31.5, 31.0]  # type: ignore[arg-type]
    assert float(february[5]) == 9.0  # type: ignore[arg-type]  # February so far: 9 days
    assert int(february[6]) == jan_1 + 60 * 86_400_000 - 1  # type: ignore[call-overload]  # 2024 is a leap year


def test_the_average_price_is_volume_weighted_over_the_last_five_minutes(btc: SymbolMarket) -> None:
    # the whole second candle (105 -> 106 -> 90 -> 92, 20 traded): the mean of its path's three legs
    expected = ((105 + 106) / 2 + (106 + 90) / 2 + (90 + 92) / 2) / 3
    assert btc.average_price(T0 + 2 * FIVE_MIN, 5) == pytest.approx(expected)
    # half of the first candle and half of the second: weighted by their volumes, 10 and 20
    first_half = btc.path.volume_weighted_price(T0 + FIVE_MIN // 2, T0 + FIVE_MIN)
    second_half = btc.path.volume_weighted_price(T0 + FIVE_MIN, T0 + FIVE_MIN + FIVE_MIN // 2)
    assert [first_half[0], second_half[0]] == pytest.approx([5.0, 10.0])
    mixed = (first_half[0] * first_half[1] + second_half[0] * second_half[1]) / 15
    assert btc.average_price(T0 + FIVE_MIN + FIVE_MIN // 2, 5) == pytest.approx(mixed)
    assert btc.average_price(T0 + 5 * FIVE_MIN + 1, 5) == 94.0  # nothing traded in the gap: the last price


def test_synthetic_market_is_seeded_and_on_the_tick_grid() -> None:
    a = synthetic_candles("BTC", 30_000.0, count=500, interval_ms=MINUTE_MS, seed=3, index=0)
    b = synthetic_candles("BTC", 30_000.0, count=500, interval_ms=MINUTE_MS, seed=3, index=0)
    c = synthetic_candles("BTC", 30_000.0, count=500, interval_ms=MINUTE_MS, seed=4, index=0)
    assert np.array_equal(a.close, b.close) and not np.array_equal(a.close, c.close)
    assert np.all(a.high >= np.maximum(a.open, a.close)) and np.all(a.low <= np.minimum(a.open, a.close))
    assert np.allclose(np.round(a.close * 100), a.close * 100)
    assert np.all(np.diff(a.time) == MINUTE_MS)

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from traiding.domain.candles import Candles, load_candles
from traiding.domain.quality import (
    Gap,
    QualityReport,
    QualityThresholds,
    check_quality,
    evaluate,
)
from traiding.domain.timeframes import format_duration, format_time

T0 = 1_606_780_800_000  # 2020-12-01T00:00:00Z
STEP = 300_000  # 5m
HOUR = 3_600_000


def series(indices: list[int], closes: list[float] | None = None) -> Candles:
    """Candles at T0 + k*5m with a gently wandering close, consistent OHLC."""
    n = len(indices)
    rng = np.random.default_rng(7)
    close = (
        np.asarray(closes, dtype=np.float64) if closes is not None else 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    )
    open_ = np.concatenate([[close[0]], close[:-1]]) if n else close
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0005, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0005, 0.001, n))
    return Candles(np.asarray([T0 + k * STEP for k in indices], dtype=np.int64), open_, high, low, close, close * 0 + 5)


def failed_checks(report: QualityReport, **limits: object) -> dict[str, str]:
    return {f.check: f.message for f in evaluate(report, QualityThresholds(**limits))}


def test_clean_series_passes() -> None:
    report = check_quality(series(list(range(500))), STEP)
    assert report.rows == report.candles == report.expected == 500
    assert report.missing == 0 and report.gaps == () and report.gap_ratio == 0.0
    assert report.first_ms == T0 and report.last_ms == T0 + 499 * STEP
    assert (report.duplicates, report.out_of_order, report.misaligned) == (0, 0, 0)
    assert (report.non_positive_prices, report.inconsistent, report.non_finite, report.outliers) == (0, 0, 0, 0)
    assert report.staleness_ms is None and report.stale is None
    assert evaluate(report, QualityThresholds()) == []


def test_gaps_are_found_with_their_size_and_place() -> None:
    indices = [k for k in range(200) if not (10 <= k < 13) and k != 50 and not (100 <= k < 160)]
    report = check_quality(series(indices), STEP)
    assert report.gaps == (
        Gap(start_ms=T0 + 10 * STEP, end_ms=T0 + 13 * STEP, missing=3),
        Gap(start_ms=T0 + 50 * STEP, end_ms=T0 + 51 * STEP, missing=1),
        Gap(start_ms=T0 + 100 * STEP, end_ms=T0 + 160 * STEP, missing=60),
    )
    assert report.missing == 64
    assert report.expected == 200
    assert report.gap_ratio == pytest.approx(64 / 200)
    assert report.longest_gap_ms == 60 * STEP == 5 * HOUR
    assert report.longest_gap == report.gaps[2]

    failures = failed_checks(report, max_gap_ratio=0.01, max_gap_ms=HOUR)
    assert failures["max_gap_ratio"] == (
        "gap ratio 32.00% above the limit 1.00% (3 gaps, 64 of 200 candles missing, "
        "longest 5h from 2020-12-01T08:20:00Z (60 candles))"
    )
    assert failures["max_gap"] == "longest gap 5h from 2020-12-01T08:20:00Z (60 candles) above the limit 1h"
    assert failed_checks(report, max_gap_ratio=0.33, max_gap_ms=5 * HOUR) == {}
    assert failed_checks(report, max_gap_ratio=None) == {}


def test_requested_window_counts_missing_head_and_tail() -> None:
    report = check_quality(series(list(range(10, 20))), STEP, start_ms=T0, end_ms=T0 + 25 * STEP)
    assert report.gaps == (
        Gap(start_ms=T0, end_ms=T0 + 10 * STEP, missing=10),
        Gap(start_ms=T0 + 20 * STEP, end_ms=T0 + 25 * STEP, missing=5),
    )
    assert report.expected == 25
    assert report.gap_ratio == pytest.approx(15 / 25)
    # A window that starts or ends mid-candle asks only for candles opening inside it.
    inside = check_quality(series(list(range(10, 20))), STEP, start_ms=T0 + 9 * STEP + 1, end_ms=T0 + 20 * STEP)
    assert inside.gaps == ()


def test_empty_series() -> None:
    empty = series([])
    report = check_quality(empty, STEP, now_ms=T0, max_staleness_ms=STEP)
    assert report.candles == 0 and report.first_ms is None and report.expected == 0
    assert report.stale is True
    failures = failed_checks(report, max_staleness_ms=STEP)
    assert failures["min_candles"] == "0 candles, fewer than the minimum 1"
    assert failures["max_staleness"] == "no candles, so no fresh one"
    windowed = check_quality(empty, STEP, start_ms=T0, end_ms=T0 + 10 * STEP)
    assert windowed.gaps == (Gap(start_ms=T0, end_ms=T0 + 10 * STEP, missing=10),)
    assert windowed.gap_ratio == 1.0


def test_duplicates_and_out_of_order_rows_are_counted_not_hidden() -> None:
    candles = series([0, 1, 2, 2, 3, 5, 4, 6, 6, 6])
    report = check_quality(candles, STEP)
    assert report.rows == 10
    assert report.candles == 7
    assert report.duplicates == 3
    assert report.out_of_order == 1
    assert report.gaps == ()
    failures = failed_checks(report)
    # How many, and where the first one is: enough to find it in the file or the exchange's answer.
    assert failures["duplicates"] == (
        "3 duplicate rows (same open time as an earlier row; first: row 4, 2020-12-01T00:10:00Z)"
    )
    assert failures["out_of_order"] == "1 row out of time order (first: row 7, 2020-12-01T00:20:00Z)"
    assert failed_checks(report, allow_duplicates=True, allow_out_of_order=True) == {}


def test_misaligned_open_times() -> None:
    candles = series([0, 1, 2, 3])
    shifted = Candles(
        candles.time + np.asarray([0, 0, 60_000, 0]),
        *(getattr(candles, c) for c in ("open", "high", "low", "close", "volume")),
    )
    report = check_quality(shifted, STEP)
    assert report.misaligned == 1
    assert "1 candles whose open time is not on the 5m grid" in failed_checks(report)["misaligned"]
    assert failed_checks(report, allow_misaligned=True) == {}


def test_bad_prices_are_counted() -> None:
    candles = series(list(range(20)))
    candles.high[3] = candles.low[3] * 0.5  # high below low
    candles.open[4] = candles.high[4] * 2  # open above high
    candles.close[5] = -1.0  # non-positive and below low
    candles.low[6] = 0.0  # non-positive (low <= open/close still holds)
    candles.volume[7] = -2.0
    candles.close[8] = np.nan
    report = check_quality(candles, STEP)
    assert report.inconsistent == 3
    assert report.non_positive_prices == 2
    assert report.negative_volume == 1
    assert report.non_finite == 1
    failures = failed_checks(report)
    assert failures["inconsistent"] == "3 candles with high < low or open/close outside [low, high]"
    assert failures["non_positive_prices"] == "2 candles with a price <= 0"
    assert failures["negative_volume"] == "1 candles with a negative volume"
    assert failures["non_finite"] == "1 candles with a missing or infinite value"
    assert set(failed_checks(report, allow_bad_prices=True, max_outlier_ratio=None)) == set()


def test_outliers_find_a_bad_tick_and_a_spike() -> None:
    candles = series(list(range(2000)))
    candles.close[500] *= 1.5  # a bad print: up 50% and straight back
    candles.high[500] = max(candles.high[500], candles.close[500])
    candles.high[1500] *= 1.3  # a wick spike
    report = check_quality(candles, STEP, outlier_sigma=20)
    flagged = {o.time_ms: o.kind for o in report.outlier_examples}
    # Candle 500 jumps (return) and has a huge body (range); 501 falls back; 1500 has a wick.
    assert sorted(flagged) == [T0 + 500 * STEP, T0 + 501 * STEP, T0 + 1500 * STEP]
    assert (flagged[T0 + 501 * STEP], flagged[T0 + 1500 * STEP]) == ("return", "range")
    assert report.outliers == 3
    failure = failed_checks(report, max_outlier_ratio=0.001)["max_outlier_ratio"]
    assert failure.startswith("3 outlier candles (0.15%) above the limit 0.10% (beyond 20 robust sigmas; worst:")
    assert check_quality(candles, STEP, outlier_sigma=1e6).outliers == 0


def test_constant_prices_have_no_outliers() -> None:
    report = check_quality(series(list(range(50)), closes=[100.0] * 50), STEP)
    assert report.outliers == 0


def test_mostly_flat_prices_still_find_a_jump() -> None:
    closes = [100.0] * 50
    closes[30:] = [101.0] * 20
    report = check_quality(series(list(range(50)), closes=closes), STEP, outlier_sigma=5)
    assert [o.time_ms for o in report.outlier_examples] == [T0 + 30 * STEP]


def test_staleness() -> None:
    candles = series(list(range(10)))
    last_close = T0 + 10 * STEP
    fresh = check_quality(candles, STEP, now_ms=last_close + 1000, max_staleness_ms=2 * STEP)
    assert fresh.staleness_ms == 1000 and fresh.stale is False
    in_progress = check_quality(candles, STEP, now_ms=last_close - 1000)
    assert in_progress.staleness_ms == 0
    old = check_quality(candles, STEP, now_ms=last_close + 3 * HOUR, max_staleness_ms=2 * STEP)
    assert old.stale is True
    assert failed_checks(old, max_staleness_ms=2 * STEP)["max_staleness"] == (
        "last candle (opened 2020-12-01T00:45:00Z) closed 3h ago, above the limit 10m"
    )
    assert failed_checks(old) == {}  # no staleness limit, no failure


def test_report_is_frozen_and_serialisable() -> None:
    report = check_quality(series([0, 1, 5]), STEP, now_ms=T0 + HOUR)
    with pytest.raises(ValidationError):
        report.missing = 0  # type: ignore[misc]
    again = QualityReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert "3 gaps" not in report.summary() and "1 gaps (3 missing, 50.00%)" in report.summary()
    assert "last candle closed 30m ago" in report.summary()


def test_thresholds_validate() -> None:
    with pytest.raises(ValidationError):
        QualityThresholds(max_gap_ratio=-0.1)
    with pytest.raises(ValidationError):
        QualityThresholds(surprise=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="timeframe_ms must be positive"):
        check_quality(series([0]), 0)


def test_real_btc_5m_has_its_six_maintenance_gaps(shared_data: Path) -> None:
    path = shared_data / "BTC_USDT-5m.json"
    times = [row[0] for row in json.loads(path.read_text())]
    # Independent reference: consecutive open times more than one 5m step apart.
    reference = [(a, b) for a, b in itertools.pairwise(times) if b - a > STEP]
    assert len(reference) == 6  # as the data README says

    report = check_quality(load_candles(path), STEP)
    assert len(report.gaps) == 6
    assert [(g.start_ms - STEP, g.end_ms) for g in report.gaps] == reference
    assert [g.missing for g in report.gaps] == [(b - a) // STEP - 1 for a, b in reference]
    assert report.missing == sum((b - a) // STEP - 1 for a, b in reference)
    assert report.expected == (times[-1] - times[0]) // STEP + 1
    assert report.candles == len(times)
    longest_between_candles = max(b - a for a, b in reference)
    assert longest_between_candles == pytest.approx(4.75 * HOUR, abs=STEP)  # "about 4.75 hours"
    assert report.longest_gap_ms == longest_between_candles - STEP  # no data from close to the next open
    assert report.duplicates == report.out_of_order == report.inconsistent == report.non_positive_prices == 0
    # Maintenance windows are real: 0.27% missing passes the default 1% limit, and the outlier filter
    # keeps to bad ticks rather than flagging the volatile days of the period.
    assert evaluate(report, QualityThresholds()) == []
    failures = failed_checks(report, max_gap_ratio=0.001)
    assert "6 gaps" in failures["max_gap_ratio"]
    a, b = max(reference, key=lambda pair: pair[1] - pair[0])
    assert f"longest {format_duration(b - a - STEP)} from {format_time(a + STEP)}" in failures["max_gap_ratio"]

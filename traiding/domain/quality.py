"""Data quality of a candle series: what the DataCheck phase measures and the limits it holds it to.

`check_quality` measures (it never fails); `evaluate` compares a report with `QualityThresholds` and says
what failed and by how much. The check reads the candles as loaded - unsorted, with duplicates - so it can
count what `normalize` would silently repair.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from traiding.domain.candles import Candles, normalize, row_order
from traiding.domain.timeframes import format_duration, format_time

# MAD * 1.4826 estimates the standard deviation of normally distributed data.
_MAD_TO_SIGMA = 1.4826
# Mean absolute deviation * 1.2533 does the same; the fallback when more than half the moves are equal.
_MEAN_ABS_TO_SIGMA = 1.2533
MAX_OUTLIER_EXAMPLES = 20


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Gap(_Frozen):
    """Candles missing between two present ones: open times `start_ms` (first missing) to `end_ms` (exclusive)."""

    start_ms: int = Field(description="Open time of the first missing candle (epoch ms).")
    end_ms: int = Field(description="Open time of the next present candle, or the window end (epoch ms).")
    missing: int = Field(description="Number of candles missing.")

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def describe(self) -> str:
        return f"{format_duration(self.duration_ms)} from {format_time(self.start_ms)} ({self.missing} candles)"


class Outlier(_Frozen):
    """A candle whose move is far outside the series' usual moves."""

    time_ms: int
    kind: str = Field(description="'return': close-to-close move; 'range': high/low spread of the candle.")
    value: float = Field(description="The log return or log(high/low).")
    sigmas: float = Field(description="Distance from the median in robust standard deviations.")


class QualityReport(_Frozen):
    """Measurements of one candle series; `evaluate` turns them into pass/fail."""

    timeframe_ms: int
    rows: int = Field(description="Rows as given, duplicates included.")
    candles: int = Field(description="Distinct open times.")
    first_ms: int | None = None
    last_ms: int | None = None
    expected: int = Field(description="Candles a complete series would hold from its first to its last one.")
    missing: int = 0
    gap_ratio: float = Field(0.0, description="missing / expected.")
    gaps: tuple[Gap, ...] = ()
    longest_gap_ms: int = 0
    duplicates: int = Field(0, description="Rows repeating an open time of an earlier row.")
    out_of_order: int = Field(0, description="Rows whose open time is before the previous row's.")
    duplicates_detail: str = Field("", description="The duplicate rows in words, naming the first one.")
    out_of_order_detail: str = Field("", description="The out-of-order rows in words, naming the first one.")
    misaligned: int = Field(0, description="Open times not a whole number of timeframes from the first.")
    non_finite: int = Field(0, description="Rows with a missing (NaN) or infinite value.")
    non_positive_prices: int = Field(0, description="Rows with an open, high, low or close <= 0.")
    negative_volume: int = 0
    inconsistent: int = Field(0, description="Rows with high < low or open/close outside [low, high].")
    outliers: int = Field(0, description="Candles with a return or range beyond outlier_sigma robust sigmas.")
    outlier_sigma: float
    outlier_examples: tuple[Outlier, ...] = ()
    staleness_ms: int | None = Field(
        None, description="Time from the close of the last candle to now (None when now was not given)."
    )
    stale: bool | None = Field(None, description="staleness_ms above max_staleness_ms (None when not asked).")

    @property
    def longest_gap(self) -> Gap | None:
        return max(self.gaps, key=lambda g: g.duration_ms, default=None)

    def summary(self) -> str:
        """One line for an event or a log."""
        parts = [f"{self.candles} candles"]
        if self.first_ms is not None and self.last_ms is not None:
            parts[0] += f" {format_time(self.first_ms)} .. {format_time(self.last_ms)}"
        longest = self.longest_gap
        gap_text = f"{len(self.gaps)} gaps ({self.missing} missing, {self.gap_ratio:.2%})"
        if longest is not None:
            gap_text += f", longest {longest.describe()}"
        parts.append(gap_text)
        for name in (
            "duplicates",
            "out_of_order",
            "misaligned",
            "non_finite",
            "non_positive_prices",
            "negative_volume",
            "inconsistent",
            "outliers",
        ):
            value = getattr(self, name)
            if value:
                parts.append(f"{value} {name.replace('_', ' ')}")
        if self.staleness_ms is not None:
            parts.append(f"last candle closed {format_duration(self.staleness_ms)} ago")
        return "; ".join(parts)


class QualityThresholds(_Frozen):
    """Limits a series must meet to pass the DataCheck gate; None switches a limit off."""

    min_candles: int = Field(1, ge=0, description="Fewest distinct candles.")
    max_gap_ratio: float | None = Field(0.01, ge=0, description="Largest share of missing candles (0.01 = 1%).")
    max_gap_ms: int | None = Field(None, ge=0, description="Longest allowed gap.")
    max_staleness_ms: int | None = Field(None, ge=0, description="Oldest allowed last candle (needs now).")
    allow_duplicates: bool = False
    allow_out_of_order: bool = False
    allow_misaligned: bool = False
    allow_bad_prices: bool = Field(
        False, description="Accept non-finite or non-positive prices, negative volume and high<low rows."
    )
    max_outlier_ratio: float | None = Field(0.001, ge=0, description="Largest share of outlier candles (0.001 = 0.1%).")


class QualityFailure(_Frozen):
    """One limit a series broke, with a message a person can act on."""

    check: str
    value: float
    limit: float
    message: str


def check_quality(
    candles: Candles,
    timeframe_ms: int,
    *,
    now_ms: int | None = None,
    max_staleness_ms: int | None = None,
    outlier_sigma: float = 20.0,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> QualityReport:
    """Measure a series of candles of `timeframe_ms`.

    `start_ms`/`end_ms` (the window that was asked for, end exclusive) count candles missing before the
    first or after the last one as gaps too. `now_ms` measures staleness; `outlier_sigma` is how many
    robust standard deviations (median absolute deviation) away a move counts as an outlier. The default
    is wide because crypto returns have fat tails: it is meant to catch bad ticks, not volatile days.
    """
    if timeframe_ms <= 0:
        raise ValueError(f"timeframe_ms must be positive, got {timeframe_ms}")
    rows = len(candles)
    order = row_order(candles)
    clean = normalize(candles)
    distinct = len(clean)

    prices = np.vstack([candles.open, candles.high, candles.low, candles.close])
    finite = np.isfinite(prices).all(axis=0) & np.isfinite(candles.volume)
    with np.errstate(invalid="ignore"):
        non_positive = int(((prices <= 0) & np.isfinite(prices)).any(axis=0).sum())
        negative_volume = int((candles.volume < 0).sum())
        inconsistent = int(
            (
                (candles.high < candles.low)
                | (candles.open < candles.low)
                | (candles.open > candles.high)
                | (candles.close < candles.low)
                | (candles.close > candles.high)
            ).sum()
        )

    gaps, expected, misaligned = _gaps(clean.time, timeframe_ms, start_ms, end_ms)
    missing = sum(g.missing for g in gaps)
    outliers, examples = _outliers(clean, outlier_sigma)

    staleness: int | None = None
    stale: bool | None = None
    if now_ms is not None and distinct:
        staleness = max(0, now_ms - (int(clean.time[-1]) + timeframe_ms))
        if max_staleness_ms is not None:
            stale = staleness > max_staleness_ms
    elif now_ms is not None and max_staleness_ms is not None:
        stale = True  # no candle at all is as stale as it gets

    return QualityReport(
        timeframe_ms=timeframe_ms,
        rows=rows,
        candles=distinct,
        first_ms=int(clean.time[0]) if distinct else None,
        last_ms=int(clean.time[-1]) if distinct else None,
        expected=expected,
        missing=missing,
        gap_ratio=missing / expected if expected else 0.0,
        gaps=tuple(gaps),
        longest_gap_ms=max((g.duration_ms for g in gaps), default=0),
        duplicates=order.duplicates,
        out_of_order=order.out_of_order,
        duplicates_detail=order.duplicates_text(),
        out_of_order_detail=order.out_of_order_text(),
        misaligned=misaligned,
        non_finite=int((~finite).sum()),
        non_positive_prices=non_positive,
        negative_volume=negative_volume,
        inconsistent=inconsistent,
        outliers=outliers,
        outlier_sigma=outlier_sigma,
        outlier_examples=tuple(examples),
        staleness_ms=staleness,
        stale=stale,
    )


def _gaps(
    times: npt.NDArray[np.int64], step: int, start_ms: int | None, end_ms: int | None
) -> tuple[list[Gap], int, int]:
    """Gaps in sorted distinct open times, the expected candle count and the misaligned count."""
    gaps: list[Gap] = []
    if times.size == 0:
        if start_ms is not None and end_ms is not None and end_ms > start_ms:
            count = (end_ms - start_ms + step - 1) // step
            return [Gap(start_ms=start_ms, end_ms=start_ms + count * step, missing=count)], count, 0
        return [], 0, 0
    first, last = int(times[0]), int(times[-1])
    misaligned = int(((times - first) % step != 0).sum())
    expected = (last - first) // step + 1
    if start_ms is not None and start_ms < first:
        lead = (first - start_ms) // step  # whole candles that fit before the first one
        if lead:
            gaps.append(Gap(start_ms=first - lead * step, end_ms=first, missing=lead))
            expected += lead
    steps = np.diff(times)
    # A step of k timeframes leaves k-1 candles missing; a misaligned step of 1.2 timeframes leaves none.
    holes = np.flatnonzero(steps >= 2 * step)
    for index in holes.tolist():
        before, after = int(times[index]), int(times[index + 1])
        gaps.append(Gap(start_ms=before + step, end_ms=after, missing=(after - before) // step - 1))
    if end_ms is not None and end_ms > last + step:
        tail = (end_ms - last - 1) // step  # candles opening after the last one and before end_ms
        if tail:
            gaps.append(Gap(start_ms=last + step, end_ms=last + step + tail * step, missing=tail))
            expected += tail
    return gaps, expected, misaligned


def _robust_z(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """|value - median| in robust standard deviations; zeros when the values do not vary."""
    median = float(np.median(values))
    deviation = np.abs(values - median)
    sigma = _MAD_TO_SIGMA * float(np.median(deviation))
    if sigma == 0.0:
        sigma = _MEAN_ABS_TO_SIGMA * float(deviation.mean())
    if sigma == 0.0:
        return np.zeros_like(values)
    z: npt.NDArray[np.float64] = deviation / sigma
    return z


def _outliers(clean: Candles, sigma_limit: float) -> tuple[int, list[Outlier]]:
    """Candles whose close-to-close log return or log(high/low) is beyond `sigma_limit` robust sigmas."""
    if len(clean) < 3:
        return 0, []
    with np.errstate(invalid="ignore", divide="ignore"):
        log_close = np.log(clean.close)
        returns = np.diff(log_close)
        spread = np.log(clean.high / clean.low)
    flagged: dict[int, Outlier] = {}
    for kind, values, offset in (("return", returns, 1), ("range", spread, 0)):
        usable = np.isfinite(values)
        if usable.sum() < 3:
            continue
        z = np.zeros_like(values)
        z[usable] = _robust_z(values[usable])
        for index in np.flatnonzero(z > sigma_limit).tolist():
            candle = index + offset
            if candle not in flagged or flagged[candle].sigmas < z[index]:
                flagged[candle] = Outlier(
                    time_ms=int(clean.time[candle]),
                    kind=kind,
                    value=float(values[index]),
                    sigmas=round(float(z[index]), 1),
                )
    worst = sorted(flagged.values(), key=lambda o: o.sigmas, reverse=True)[:MAX_OUTLIER_EXAMPLES]
    return len(flagged), sorted(worst, key=lambda o: o.time_ms)


def evaluate(report: QualityReport, thresholds: QualityThresholds) -> list[QualityFailure]:
    """The limits `report` breaks; an empty list means the data passes."""
    failures: list[QualityFailure] = []

    def fail(check: str, value: float, limit: float, message: str) -> None:
        failures.append(QualityFailure(check=check, value=value, limit=limit, message=message))

    if report.candles < thresholds.min_candles:
        fail(
            "min_candles",
            report.candles,
            thresholds.min_candles,
            f"{report.candles} candles, fewer than the minimum {thresholds.min_candles}",
        )
    longest = report.longest_gap
    gap_context = f"{len(report.gaps)} gaps, {report.missing} of {report.expected} candles missing"
    if longest is not None:
        gap_context += f", longest {longest.describe()}"
    if thresholds.max_gap_ratio is not None and report.gap_ratio > thresholds.max_gap_ratio:
        fail(
            "max_gap_ratio",
            report.gap_ratio,
            thresholds.max_gap_ratio,
            f"gap ratio {report.gap_ratio:.2%} above the limit {thresholds.max_gap_ratio:.2%} ({gap_context})",
        )
    if thresholds.max_gap_ms is not None and report.longest_gap_ms > thresholds.max_gap_ms and longest:
        fail(
            "max_gap",
            report.longest_gap_ms,
            thresholds.max_gap_ms,
            f"longest gap {longest.describe()} above the limit {format_duration(thresholds.max_gap_ms)}",
        )
    if thresholds.max_staleness_ms is not None:
        if report.staleness_ms is None:
            if report.candles == 0:
                fail("max_staleness", float("inf"), thresholds.max_staleness_ms, "no candles, so no fresh one")
        elif report.staleness_ms > thresholds.max_staleness_ms:
            last = format_time(report.last_ms) if report.last_ms is not None else "?"
            fail(
                "max_staleness",
                report.staleness_ms,
                thresholds.max_staleness_ms,
                f"last candle (opened {last}) closed {format_duration(report.staleness_ms)} ago, "
                f"above the limit {format_duration(thresholds.max_staleness_ms)}",
            )
    if report.duplicates and not thresholds.allow_duplicates:
        fail("duplicates", report.duplicates, 0, report.duplicates_detail)
    if report.out_of_order and not thresholds.allow_out_of_order:
        fail("out_of_order", report.out_of_order, 0, report.out_of_order_detail)
    if report.misaligned and not thresholds.allow_misaligned:
        fail(
            "misaligned",
            report.misaligned,
            0,
            f"{report.misaligned} candles whose open time is not on the "
            f"{format_duration(report.timeframe_ms)} grid of the first candle",
        )
    if not thresholds.allow_bad_prices:
        for check, count, what in (
            ("non_finite", report.non_finite, "candles with a missing or infinite value"),
            ("non_positive_prices", report.non_positive_prices, "candles with a price <= 0"),
            ("negative_volume", report.negative_volume, "candles with a negative volume"),
            ("inconsistent", report.inconsistent, "candles with high < low or open/close outside [low, high]"),
        ):
            if count:
                fail(check, count, 0, f"{count} {what}")
    if thresholds.max_outlier_ratio is not None and report.candles:
        ratio = report.outliers / report.candles
        if ratio > thresholds.max_outlier_ratio:
            worst = max(report.outlier_examples, key=lambda o: o.sigmas)
            fail(
                "max_outlier_ratio",
                ratio,
                thresholds.max_outlier_ratio,
                f"{report.outliers} outlier candles ({ratio:.2%}) above the limit "
                f"{thresholds.max_outlier_ratio:.2%} (beyond {report.outlier_sigma:g} robust sigmas; worst: "
                f"{worst.kind} {worst.value:+.4f} at {format_time(worst.time_ms)}, {worst.sigmas:g} sigmas)",
            )
    return failures

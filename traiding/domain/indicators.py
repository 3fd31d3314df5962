"""Technical indicators over numpy arrays: vectorised, O(n), numpy only.

Conventions: every function returns an array as long as its input, NaN where the indicator is not
defined yet (its warm-up), and value i uses inputs up to and including i only (no look-ahead).

Two techniques keep them fast and accurate without scipy:
- Rolling sums come from cumulative sums restarted in blocks and centred on a level near the block's
  values, so neither the running total of a million prices nor the cancellation in E[x^2] - E[x]^2
  eats the precision of a small variance on a large price.
- Exponential smoothing (EMA, Wilder's RSI) is the linear recurrence y[i] = d*y[i-1] + u[i], solved in
  blocks with scaled cumulative sums; a Python loop over a million candles would take ~0.3 s.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Block-solved recurrences scale inputs by up to this factor: it bounds the extra rounding error (~1e-13).
_SCALE_LIMIT = 1e3
# Terms smaller than this share of the largest are beyond float64 precision and can be dropped.
_NEGLIGIBLE = 1e-20
# Smallest block of a restarted cumulative sum; blocks are at least 8 windows long (little overlap).
_MIN_BLOCK = 256


def _as_float(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"expected a one-dimensional series, got shape {array.shape}")
    return array


def _check_period(period: int, minimum: int = 1) -> None:
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < minimum:
        raise ValueError(f"period must be an integer >= {minimum}, got {period!r}")


def _rolling_moments(x: FloatArray, period: int, *, variance: bool = True) -> tuple[FloatArray, FloatArray]:
    """Rolling mean and population variance over `period` values, NaN for the first period-1.

    The series is cut into blocks; each block is one row of a table that also holds the period-1 values
    before it, so every window lies wholly inside one row. Each row is centred on one of its own values
    and summed from zero, so the sums stay small and the variance keeps its precision.
    """
    n = x.shape[0]
    if n < period:
        return np.full(n, np.nan), np.full(n, np.nan)
    bad = ~np.isfinite(x)
    has_bad = bool(bad.any())
    if has_bad:
        # A missing value spoils the windows that hold it, not the block's running sums: stand in the
        # previous finite value (a value near its neighbours keeps the centred sums small), mark it below.
        if bad.all():
            return np.full(n, np.nan), np.full(n, np.nan)
        last_good = np.maximum.accumulate(np.where(bad, 0, np.arange(n)))
        last_good[last_good == 0] = int(np.argmax(~bad)) if bad[0] else 0
        x = x[last_good]
    block = max(8 * period, _MIN_BLOCK)
    rows = -(-n // block)
    lead = period - 1
    # Padding repeats the edge values: far-off padding would blow up the centred sums of its row.
    padded = np.empty(lead + rows * block)
    padded[:lead] = x[0]
    padded[lead : lead + n] = x
    padded[lead + n :] = x[-1]
    width = block + lead
    table = np.lib.stride_tricks.as_strided(
        padded, shape=(rows, width), strides=(block * padded.itemsize, padded.itemsize), writeable=False
    )
    level = x[np.minimum(np.arange(rows) * block + block // 2, n - 1)]
    centred = table - level[:, None]

    def window_sums(values: FloatArray) -> FloatArray:
        running = np.cumsum(values, axis=1)
        sums = running[:, lead:].copy()
        sums[:, 1:] -= running[:, : block - 1]
        return sums

    window_mean = window_sums(centred) / period
    mean = (window_mean + level[:, None]).ravel()[:n]
    mean[:lead] = np.nan
    var = np.full(n, np.nan)
    if variance:
        squares = window_sums(centred * centred) / period
        var = np.maximum(squares - window_mean * window_mean, 0.0).ravel()[:n]
        var[:lead] = np.nan
    if has_bad:
        holes = np.concatenate(([0], np.cumsum(bad, dtype=np.int64)))
        spoiled = np.zeros(n, dtype=np.bool_)
        spoiled[lead:] = holes[period:] - holes[: n - lead] > 0
        mean[spoiled] = np.nan
        var[spoiled] = np.nan
    return mean, var


def sma(values: npt.ArrayLike, period: int) -> FloatArray:
    """Simple moving average; NaN for the first period-1 values."""
    _check_period(period)
    return _rolling_moments(_as_float(values), period, variance=False)[0]


def rolling_std(values: npt.ArrayLike, period: int, *, ddof: int = 0) -> FloatArray:
    """Rolling standard deviation (population by default, ddof=1 for the sample one)."""
    _check_period(period, minimum=ddof + 1)
    x = _as_float(values)
    if period == 1:  # exactly zero, not the rounding residue of sums of squares
        return np.where(np.isfinite(x), 0.0, np.nan)
    _, var = _rolling_moments(x, period)
    if ddof:
        var = var * (period / (period - ddof))
    result: FloatArray = np.sqrt(var)
    return result


def linear_recurrence(inputs: npt.ArrayLike, decay: float, initial: float = 0.0) -> FloatArray:
    """y[i] = decay * y[i-1] + inputs[i] with y[-1] = initial, for 0 <= decay < 1, vectorised."""
    u = _as_float(inputs)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    n = u.shape[0]
    if n == 0:
        return u.copy()
    if decay == 0.0:
        return u.copy()
    block = int(math.log(_SCALE_LIMIT) / -math.log(decay))
    if block <= 1:
        return _truncated_recurrence(u, decay, initial)
    rows = -(-n // block)
    padded = np.zeros(rows * block)
    padded[:n] = u
    table = padded.reshape(rows, block)
    steps = np.arange(block, dtype=np.float64)
    powers = decay**steps  # decay^0 .. decay^(block-1), down to about 1 / _SCALE_LIMIT
    # Within a row, starting from zero: local[k, i] = sum_{j <= i} decay^(i-j) * u[k, j].
    local = np.cumsum(table * (decay**-steps), axis=1) * powers
    # The value at the end of each row follows the same recurrence one row at a time, with decay^block.
    ends = _truncated_recurrence(local[:, -1], decay**block, initial)
    carried_in = np.concatenate(([initial], ends[:-1]))
    result: FloatArray = (local + carried_in[:, None] * (powers * decay)[None, :]).ravel()[:n]
    return result


def _truncated_recurrence(u: FloatArray, decay: float, initial: float) -> FloatArray:
    """The recurrence for a small decay: sum of the last few inputs, older ones being negligible."""
    n = u.shape[0]
    y = u.copy()
    terms = min(n - 1, math.ceil(math.log(_NEGLIGIBLE) / math.log(decay))) if decay > 0 else 0
    weight = 1.0
    for lag in range(1, terms + 1):
        weight *= decay
        y[lag:] += weight * u[:-lag]
    with np.errstate(under="ignore"):
        y += initial * decay ** np.arange(1, n + 1, dtype=np.float64)
    return y


def ema(values: npt.ArrayLike, period: int) -> FloatArray:
    """Exponential moving average with alpha = 2 / (period + 1), seeded with the SMA of the first `period`.

    The first value is at index period-1 (as TA-Lib computes it); NaN before.
    """
    _check_period(period)
    return _smoothed(_as_float(values), period, 2.0 / (period + 1))


def wilder(values: npt.ArrayLike, period: int) -> FloatArray:
    """Wilder's smoothing (alpha = 1 / period), seeded with the SMA of the first `period` values."""
    _check_period(period)
    return _smoothed(_as_float(values), period, 1.0 / period)


def _smoothed(x: FloatArray, period: int, alpha: float) -> FloatArray:
    n = x.shape[0]
    result = np.full(n, np.nan)
    if n < period:
        return result
    seed = float(x[:period].mean())
    result[period - 1] = seed
    result[period:] = linear_recurrence(alpha * x[period:], 1.0 - alpha, seed)
    return result


def rsi(close: npt.ArrayLike, period: int = 14) -> FloatArray:
    """Wilder's relative strength index in [0, 100]; NaN for the first `period` values.

    Average gain and loss start as the mean of the first `period` changes and are then smoothed with
    alpha = 1/period. With no losses the RSI is 100; with neither gains nor losses (flat prices) it is 50.
    """
    _check_period(period)
    x = _as_float(close)
    result = np.full(x.shape[0], np.nan)
    if x.shape[0] <= period:
        return result
    change = np.diff(x)
    gain = wilder(np.maximum(change, 0.0), period)[period - 1 :]
    loss = wilder(np.maximum(-change, 0.0), period)[period - 1 :]
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        # 100 - 100 / (1 + gain/loss) == 100 * gain / (gain + loss), which needs no special case for loss 0.
        values = np.where(total > 0, 100.0 * gain / total, 50.0)
    result[period:] = values
    return result


def bollinger(close: npt.ArrayLike, period: int = 20, width: float = 2.0) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Bollinger bands (middle, upper, lower): SMA +- width * population standard deviation."""
    _check_period(period)
    mean, var = _rolling_moments(_as_float(close), period)
    spread = width * np.sqrt(var)
    return mean, mean + spread, mean - spread


def _pair(a: npt.ArrayLike, b: npt.ArrayLike | float) -> tuple[FloatArray, FloatArray]:
    first = _as_float(a)
    second = np.broadcast_to(np.asarray(b, dtype=np.float64), first.shape)
    return first, second


def crossed_above(a: npt.ArrayLike, b: npt.ArrayLike | float) -> BoolArray:
    """True at i where a[i-1] <= b[i-1] and a[i] > b[i] (`b` may be a constant level); never at i = 0."""
    first, second = _pair(a, b)
    result = np.zeros(first.shape[0], dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        result[1:] = (first[:-1] <= second[:-1]) & (first[1:] > second[1:])
    return result


def crossed_below(a: npt.ArrayLike, b: npt.ArrayLike | float) -> BoolArray:
    """True at i where a[i-1] >= b[i-1] and a[i] < b[i] (`b` may be a constant level); never at i = 0."""
    first, second = _pair(a, b)
    result = np.zeros(first.shape[0], dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        result[1:] = (first[:-1] >= second[:-1]) & (first[1:] < second[1:])
    return result

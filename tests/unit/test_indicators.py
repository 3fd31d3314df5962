"""Indicators against straightforward reference implementations (plain Python loops) on random data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from traiding.domain import indicators as ind

NAN = math.nan


def prices(n: int, seed: int = 3, level: float = 30_000.0) -> list[float]:
    """A random walk at a BTC-like level: large values with small relative moves stress the precision."""
    rng = np.random.default_rng(seed)
    walk: list[float] = (level * np.exp(np.cumsum(rng.normal(0, 0.002, n)))).tolist()
    return walk


def ref_sma(x: list[float], p: int) -> list[float]:
    return [NAN if i < p - 1 else sum(x[i - p + 1 : i + 1]) / p for i in range(len(x))]


def ref_std(x: list[float], p: int, ddof: int = 0) -> list[float]:
    out = []
    for i in range(len(x)):
        if i < p - 1:
            out.append(NAN)
            continue
        window = x[i - p + 1 : i + 1]
        mean = sum(window) / p
        out.append(math.sqrt(sum((v - mean) ** 2 for v in window) / (p - ddof)))
    return out


def ref_smoothed(x: list[float], p: int, alpha: float) -> list[float]:
    out = [NAN] * len(x)
    if len(x) < p:
        return out
    value = sum(x[:p]) / p
    out[p - 1] = value
    for i in range(p, len(x)):
        value = alpha * x[i] + (1 - alpha) * value
        out[i] = value
    return out


def ref_rsi(x: list[float], p: int) -> list[float]:
    out = [NAN] * len(x)
    if len(x) <= p:
        return out
    changes = [b - a for a, b in itertools.pairwise(x)]
    gain = sum(max(c, 0.0) for c in changes[:p]) / p
    loss = sum(max(-c, 0.0) for c in changes[:p]) / p

    def value(g: float, lo: float) -> float:
        if lo == 0:
            return 50.0 if g == 0 else 100.0
        return 100.0 - 100.0 / (1.0 + g / lo)

    out[p] = value(gain, loss)
    for i in range(p + 1, len(x)):
        c = changes[i - 1]
        gain = (gain * (p - 1) + max(c, 0.0)) / p
        loss = (loss * (p - 1) + max(-c, 0.0)) / p
        out[i] = value(gain, loss)
    return out


def assert_series(actual: np.ndarray, expected: list[float], rel: float = 1e-12, abs_: float = 0.0) -> None:
    assert actual.shape == (len(expected),)
    reference = np.asarray(expected)
    assert np.array_equal(np.isnan(actual), np.isnan(reference)), "NaN positions differ"
    mask = ~np.isnan(reference)
    np.testing.assert_allclose(actual[mask], reference[mask], rtol=rel, atol=abs_)


@pytest.mark.parametrize("period", [1, 2, 3, 20, 50, 300])
@pytest.mark.parametrize("n", [0, 1, 5, 299, 3000])
def test_sma_matches_reference(period: int, n: int) -> None:
    x = prices(n, seed=period + n)
    assert_series(ind.sma(x, period), ref_sma(x, period))


@pytest.mark.parametrize(("period", "ddof"), [(1, 0), (2, 0), (2, 1), (5, 0), (20, 0), (20, 1), (100, 0)])
def test_rolling_std_matches_two_pass_reference(period: int, ddof: int) -> None:
    x = prices(2500, seed=period)
    # Absolute tolerance: std of 5m-like moves on a 30k price level, ~1e-9 of the price.
    assert_series(ind.rolling_std(x, period, ddof=ddof), ref_std(x, period, ddof), rel=1e-7, abs_=3e-5)


def test_rolling_std_keeps_precision_of_a_tiny_spread_on_a_large_level() -> None:
    rng = np.random.default_rng(11)
    x = (1e6 + rng.normal(0, 1e-3, 5000)).tolist()  # std 1e-3 on a level of a million
    assert_series(ind.rolling_std(x, 20), ref_std(x, 20), rel=1e-6)


@pytest.mark.parametrize("period", [1, 2, 3, 9, 12, 26, 200])
def test_ema_matches_reference(period: int) -> None:
    x = prices(5000, seed=period)
    assert_series(ind.ema(x, period), ref_smoothed(x, period, 2 / (period + 1)))


@pytest.mark.parametrize("period", [1, 2, 14, 100])
def test_wilder_matches_reference(period: int) -> None:
    x = prices(3000, seed=period)
    assert_series(ind.wilder(x, period), ref_smoothed(x, period, 1 / period))


def test_ema_of_short_series() -> None:
    assert np.isnan(ind.ema([1.0, 2.0], 3)).all()
    assert_series(ind.ema([1.0, 2.0, 3.0], 3), [NAN, NAN, 2.0])
    assert ind.ema([], 3).shape == (0,)


@pytest.mark.parametrize("decay", [0.0, 1e-6, 0.01, 0.3, 0.5, 0.9, 0.99, 0.9999])
def test_linear_recurrence_matches_a_loop(decay: float) -> None:
    rng = np.random.default_rng(5)
    u = rng.normal(0, 1, 4000).tolist()
    expected = []
    y = 2.5
    for value in u:
        y = decay * y + value
        expected.append(y)
    assert_series(ind.linear_recurrence(u, decay, 2.5), expected, rel=1e-9, abs_=1e-9)


def test_linear_recurrence_rejects_unstable_decay() -> None:
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        ind.linear_recurrence([1.0], 1.0)
    assert ind.linear_recurrence([], 0.5).shape == (0,)


@pytest.mark.parametrize("period", [2, 6, 14, 30])
def test_rsi_matches_wilder_reference(period: int) -> None:
    x = prices(3000, seed=period)
    assert_series(ind.rsi(x, period), ref_rsi(x, period), rel=1e-9, abs_=1e-9)


def test_rsi_edge_cases() -> None:
    assert_series(ind.rsi([1.0, 2.0, 3.0, 4.0, 5.0], 2), [NAN, NAN, 100.0, 100.0, 100.0])
    assert_series(ind.rsi([5.0, 4.0, 3.0, 2.0], 2), [NAN, NAN, 0.0, 0.0])
    assert_series(ind.rsi([3.0, 3.0, 3.0, 3.0], 2), [NAN, NAN, 50.0, 50.0])
    assert np.isnan(ind.rsi([1.0, 2.0], 2)).all()
    values = ind.rsi(prices(2000), 14)
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 100


def test_bollinger_bands() -> None:
    x = prices(1000, seed=9)
    middle, upper, lower = ind.bollinger(x, 20, 2.5)
    assert_series(middle, ref_sma(x, 20))
    spread = [2.5 * s for s in ref_std(x, 20)]
    assert_series(upper, [m + s for m, s in zip(ref_sma(x, 20), spread, strict=True)], rel=1e-12)
    assert_series(lower, [m - s for m, s in zip(ref_sma(x, 20), spread, strict=True)], rel=1e-12)


def test_leading_and_all_missing_values() -> None:
    x = [NAN, NAN, 1.0, 2.0, 3.0, 4.0]
    assert_series(ind.sma(x, 2), [NAN, NAN, NAN, 1.5, 2.5, 3.5])
    assert np.isnan(ind.sma([NAN, NAN, NAN], 2)).all()
    assert np.isnan(ind.rolling_std([NAN, NAN, NAN], 2)).all()


def test_missing_values_spoil_only_the_windows_that_hold_them() -> None:
    x = prices(600, seed=4)
    x[300] = NAN
    mean = ind.sma(x, 10)
    std = ind.rolling_std(x, 10)
    spoiled = np.flatnonzero(np.isnan(mean[9:])) + 9
    assert spoiled.tolist() == list(range(300, 310))
    assert np.array_equal(np.isnan(std), np.isnan(mean))
    clean = [NAN if 300 <= i < 310 else v for i, v in enumerate(ref_sma(x, 10))]
    assert_series(mean, clean)


def test_crossovers() -> None:
    a = [1.0, 2.0, 3.0, 3.0, 2.0, 1.0, 2.0, 2.0, 3.0]
    b = [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    # a == b at index 1 then above at 2: crossing at 2; touching (index 6, 7) is not crossing until it moves.
    assert ind.crossed_above(a, b).tolist() == [False, False, True, False, False, False, False, False, True]
    assert ind.crossed_below(a, b).tolist() == [False, False, False, False, False, True, False, False, False]
    assert ind.crossed_above(a, 2.0).tolist() == ind.crossed_above(a, b).tolist()
    with_nan = [NAN, 1.0, 3.0]
    assert ind.crossed_above(with_nan, 2.0).tolist() == [False, False, True]
    assert ind.crossed_above([NAN, 3.0], 2.0).tolist() == [False, False]
    assert ind.crossed_above([], 1.0).tolist() == []


def test_crossovers_match_the_reference_definition_on_random_data() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 4, 2000).astype(float).tolist()
    b = rng.integers(0, 4, 2000).astype(float).tolist()
    above = [False] + [a[i - 1] <= b[i - 1] and a[i] > b[i] for i in range(1, 2000)]
    below = [False] + [a[i - 1] >= b[i - 1] and a[i] < b[i] for i in range(1, 2000)]
    assert ind.crossed_above(a, b).tolist() == above
    assert ind.crossed_below(a, b).tolist() == below


def test_invalid_periods_and_shapes() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="period must be an integer >= 1"):
            ind.sma([1.0, 2.0], bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period must be an integer >= 2"):
        ind.rolling_std([1.0, 2.0], 1, ddof=1)
    with pytest.raises(ValueError, match="one-dimensional"):
        ind.ema([[1.0, 2.0]], 2)

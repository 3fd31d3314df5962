"""The price path inside candles: where a replayed market is between a candle's open, high, low and close.

Inside a candle the price goes open -> first extreme -> second extreme -> close, in straight lines reached at
0, 1/3, 2/3 and 1 of the candle: a rising candle (close >= open) visits its low first, a falling one its high.
In a gap, and after the last candle, the price stays at the last close. The same candles give the same path,
so the exchange simulator (which trades on it) and the paper broker of a dry run (which replays the candles
it fetched) agree on when a price was reached. Volume is spread evenly over each candle's time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from traiding.domain.candles import Candles

Points = tuple[float, float, float, float]


def path_points(o: float, h: float, lo: float, c: float) -> Points:
    """The four corners of a candle's path, at 0, 1/3, 2/3 and 1 of it."""
    return (o, lo, h, c) if c >= o else (o, h, lo, c)


def path_price(points: Points, fraction: float) -> float:
    scaled = min(max(fraction, 0.0), 1.0) * 3.0
    k = min(int(scaled), 2)
    return points[k] + (points[k + 1] - points[k]) * (scaled - k)


def path_so_far(points: Points, fraction: float) -> tuple[float, float, float]:
    """(high so far, low so far, price now) after `fraction` of the candle (the extremes passed so far)."""
    price = path_price(points, fraction)
    k = min(int(min(max(fraction, 0.0), 1.0) * 3.0), 2)
    seen = [*points[: k + 1], price]
    return max(seen), min(seen), price


@dataclass(frozen=True)
class Crossing:
    """The path reached a price inside the candle that ends at `candle_end`: first at `time`; `volume` traded at or
    beyond it."""

    time: int
    volume: float
    candle_end: int


@dataclass(frozen=True)
class _Segment:
    start: int
    end: int
    a: float  # price at start
    b: float  # price at end

    def at(self, t: float) -> float:
        return self.a + (self.b - self.a) * (t - self.start) / max(self.end - self.start, 1)

    def time_of(self, price: float) -> float:
        """When the straight line is at `price` (a and b on either side of it, a != b)."""
        return self.start + (price - self.a) / (self.b - self.a) * (self.end - self.start)


class PricePath:
    """The path through `candles` of one interval; prices between the corners are rounded to `decimals`."""

    def __init__(self, candles: Candles, interval_ms: int, decimals: int | None = None) -> None:
        if len(candles) == 0:
            raise ValueError("a price path needs at least one candle")
        self.candles = candles
        self.interval_ms = interval_ms
        self.decimals = decimals

    def _round(self, price: float) -> float:
        return round(price, self.decimals) if self.decimals is not None else price

    def points(self, i: int) -> Points:
        c = self.candles
        return path_points(float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]))

    def locate(self, t: int) -> int:
        """The index of the last candle that opened at or before `t` (-1 before the first)."""
        return int(np.searchsorted(self.candles.time, t, side="right")) - 1

    def _segments(self, i: int) -> list[_Segment]:
        start, dt = int(self.candles.time[i]), self.interval_ms
        p = self.points(i)
        return [_Segment(start + dt * k // 3, start + dt * (k + 1) // 3, p[k], p[k + 1]) for k in range(3)]

    def price_at(self, t: int) -> float:
        """The price at `t`: on the path inside a candle, the last close in a gap or after the data."""
        i = self.locate(t)
        if i < 0:
            return float(self.candles.open[0])
        fraction = (t - int(self.candles.time[i])) / self.interval_ms
        if fraction >= 1.0:
            return float(self.candles.close[i])
        return self._round(path_price(self.points(i), fraction))

    def range(self, t0: int, t1: int) -> tuple[float, float]:
        """(lowest, highest) price on the path between t0 and t1 (inclusive)."""
        if t1 < t0:
            t0, t1 = t1, t0
        p0, p1 = self.price_at(t0), self.price_at(t1)
        lo, hi = min(p0, p1), max(p0, p1)
        c = self.candles
        j0, j1 = self.locate(t0), self.locate(t1)
        if j1 - j0 > 1:
            lo = min(lo, float(c.low[j0 + 1 : j1].min()))
            hi = max(hi, float(c.high[j0 + 1 : j1].max()))
        for j in {j0, j1}:
            if j < 0:
                continue
            start = int(c.time[j])
            for k, value in enumerate(self.points(j)):
                at = start + (self.interval_ms * k) // 3
                if t0 <= at <= t1:
                    lo, hi = min(lo, value), max(hi, value)
        return lo, hi

    def _reaching(self, j0: int, j1: int, price: float, falling: bool) -> Iterator[int]:
        """Candles j0..j1 whose range reaches `price` (at or below it when `falling`, else at or above)."""
        c = self.candles
        lo = max(j0, 0)
        reached = c.low[lo : j1 + 1] <= price if falling else c.high[lo : j1 + 1] >= price
        for offset in np.flatnonzero(reached):
            yield lo + int(offset)

    def first_crossing(self, t0: int, t1: int, price: float, *, falling: bool) -> int | None:
        """The first time in [t0, t1] at which the path is at or below `price` (`falling`), or at or above it;
        None if it never gets there. A stop order triggers at exactly this time."""
        if t1 < t0:
            return None
        j0, j1 = self.locate(t0), self.locate(t1)
        if j0 >= 0 and int(self.candles.time[j0]) + self.interval_ms <= t0:  # t0 in a gap: the last close
            close = float(self.candles.close[j0])
            if (close <= price) if falling else (close >= price):
                return t0
        for j in self._reaching(j0, j1, price, falling):
            found = self._crossing_in_candle(j, t0, t1, price, falling)
            if found is not None:
                return found
        return None

    def _crossing_in_candle(self, j: int, t0: int, t1: int, price: float, falling: bool) -> int | None:
        for seg in self._segments(j):
            lo, hi = max(seg.start, t0), min(seg.end, t1)
            if lo > hi:
                continue
            p_lo, p_hi = seg.at(lo), seg.at(hi)
            if (p_lo <= price) if falling else (p_lo >= price):
                return lo
            if (p_hi <= price) if falling else (p_hi >= price):
                # straight in between: the moment it reaches `price`, rounded up to the next millisecond
                return min(hi, lo + math.ceil((p_lo - price) / (p_lo - p_hi) * (hi - lo)))
        return None

    def crossings(self, t0: int, t1: int, price: float, *, falling: bool) -> list[Crossing]:
        """Per candle in [t0, t1] whose path reaches `price`: when it first did, and the volume that traded at or
        beyond it in the window (the candle's volume times the share of its time the path spent there)."""
        out: list[Crossing] = []
        if t1 < t0:
            return out
        for j in self._reaching(self.locate(t0), self.locate(t1), price, falling):
            first = self._crossing_in_candle(j, t0, t1, price, falling)
            if first is None:
                continue
            beyond = sum(self._time_beyond(seg, t0, t1, price, falling) for seg in self._segments(j))
            end = int(self.candles.time[j]) + self.interval_ms
            out.append(Crossing(first, float(self.candles.volume[j]) * beyond / self.interval_ms, end))
        return out

    @staticmethod
    def _time_beyond(seg: _Segment, t0: int, t1: int, price: float, falling: bool) -> float:
        lo, hi = max(seg.start, t0), min(seg.end, t1)
        if lo >= hi:
            return 0.0
        p_lo, p_hi = seg.at(lo), seg.at(hi)
        inside_lo = (p_lo <= price) if falling else (p_lo >= price)
        inside_hi = (p_hi <= price) if falling else (p_hi >= price)
        if inside_lo and inside_hi:
            return float(hi - lo)
        if not inside_lo and not inside_hi:
            return 0.0
        cross = min(max(seg.time_of(price), lo), hi)
        return (hi - cross) if inside_hi else (cross - lo)

    def volume_weighted_price(self, t0: int, t1: int) -> tuple[float, float]:
        """(volume, volume-weighted average price) of the path over [t0, t1]: volume evenly spread over each
        candle's time, at the path's price at that time. (0, the price at t1) when nothing traded."""
        volume = 0.0
        notional = 0.0
        if t1 > t0:
            for j in range(max(self.locate(t0), 0), self.locate(t1) + 1):
                per_ms = float(self.candles.volume[j]) / self.interval_ms
                for seg in self._segments(j):
                    lo, hi = max(seg.start, t0), min(seg.end, t1)
                    if lo >= hi:
                        continue
                    # straight between lo and hi: the mean price is the mean of the two ends
                    volume += per_ms * (hi - lo)
                    notional += per_ms * (hi - lo) * (seg.at(lo) + seg.at(hi)) / 2.0
        if volume <= 0:
            return 0.0, self.price_at(t1)
        return volume, notional / volume

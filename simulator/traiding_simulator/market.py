"""Replayed market data: candle series per symbol, the deterministic price path inside a candle,
klines with no look-ahead (the current candle is partial), and a seeded synthetic market.

All times here are replay-clock milliseconds. Nothing here loops over candles in Python: slices and
reductions are numpy; the only per-row Python work is formatting each kline row once (cached).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from traiding.domain.candles import Candles, FloatArray
from traiding_simulator.filters import SymbolRules

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
# Binance kline intervals this simulator serves (1s and 1M are not served).
INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": WEEK_MS,
}
_WEEK_ORIGIN_MS = 4 * DAY_MS  # Binance weeks start on Monday; 1970-01-01 was a Thursday
SYNTHETIC_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the synthetic history's first candle
_ROWS_PER_CHUNK = 1024


def parse_symbol(symbol: str) -> tuple[str, str]:
    """ "BTC/USDT" -> ("BTC", "USDT")."""
    base, sep, quote = symbol.upper().partition("/")
    if not sep or not base or not quote:
        raise ValueError(f"invalid symbol {symbol!r}: expected BASE/QUOTE, e.g. BTC/USDT")
    return base, quote


def _bucket_origin(interval_ms: int) -> int:
    return _WEEK_ORIGIN_MS if interval_ms == WEEK_MS else 0


def aggregate(candles: Candles, interval_ms: int) -> Candles:
    """Candles of a longer interval built from shorter ones; buckets without data do not appear (gaps stay gaps)."""
    if len(candles) == 0:
        return candles
    origin = _bucket_origin(interval_ms)
    ids = (candles.time - origin) // interval_ms
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    ends = np.concatenate((starts[1:], [len(ids)])) - 1
    return Candles(
        time=(ids[starts] * interval_ms + origin).astype(np.int64),
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends],
        volume=np.add.reduceat(candles.volume, starts),
    )


def shift(candles: Candles, offset_ms: int) -> Candles:
    return Candles(
        candles.time + np.int64(offset_ms), candles.open, candles.high, candles.low, candles.close, candles.volume
    )


def fmt_number(value: float) -> str:
    """Binance's 8-decimal strings, falling back to the shortest exact form where 8 decimals would round."""
    text = f"{value:.8f}"
    if float(text) != value:
        text = np.format_float_positional(value, unique=True, trim="-")
    return text


def _kline_row(t: int, dt: int, ohlcv: tuple[float, float, float, float, float]) -> str:
    o, h, lo, c, v = ohlcv
    quote_volume = v * (o + h + lo + c) / 4.0
    trades = int(v * 7) + 1 if v > 0 else 0
    return (
        f'[{t},"{fmt_number(o)}","{fmt_number(h)}","{fmt_number(lo)}","{fmt_number(c)}","{fmt_number(v)}",'
        f'{t + dt - 1},"{quote_volume:.8f}",{trades},"{v / 2:.8f}","{quote_volume / 2:.8f}","0"]'
    )


# The path inside one candle: open -> first extreme -> second extreme -> close, linear between, at
# fractions 0, 1/3, 2/3, 1. A rising candle visits its low first, a falling one its high first.
def _path_points(o: float, h: float, lo: float, c: float) -> tuple[float, float, float, float]:
    return (o, lo, h, c) if c >= o else (o, h, lo, c)


def _path_price(points: tuple[float, float, float, float], fraction: float) -> float:
    scaled = min(max(fraction, 0.0), 1.0) * 3.0
    k = min(int(scaled), 2)
    return points[k] + (points[k + 1] - points[k]) * (scaled - k)


def _path_partial(points: tuple[float, float, float, float], fraction: float) -> tuple[float, float, float]:
    """(high so far, low so far, price now) after `fraction` of the candle (the extremes passed so far)."""
    price = _path_price(points, fraction)
    k = min(int(min(max(fraction, 0.0), 1.0) * 3.0), 2)
    seen = [*points[: k + 1], price]
    return max(seen), min(seen), price


@dataclass(eq=False)
class Series:
    """Candles at one interval, with their kline JSON rows formatted lazily and cached per chunk."""

    interval_ms: int
    candles: Candles
    _chunks: dict[int, list[str]] = field(default_factory=dict)

    def rows(self, start: int, stop: int) -> list[str]:
        out: list[str] = []
        for chunk in range(start // _ROWS_PER_CHUNK, (stop - 1) // _ROWS_PER_CHUNK + 1 if stop > start else 0):
            rows = self._chunks.get(chunk)
            if rows is None:
                rows = self._format_chunk(chunk)
                self._chunks[chunk] = rows
            base = chunk * _ROWS_PER_CHUNK
            out.extend(rows[max(start - base, 0) : stop - base])
        return out

    def _format_chunk(self, chunk: int) -> list[str]:
        c = self.candles
        lo, hi = chunk * _ROWS_PER_CHUNK, min((chunk + 1) * _ROWS_PER_CHUNK, len(c))
        t, o, h, low, cl, v = (
            c.time[lo:hi].tolist(),
            c.open[lo:hi].tolist(),
            c.high[lo:hi].tolist(),
            c.low[lo:hi].tolist(),
            c.close[lo:hi].tolist(),
            c.volume[lo:hi].tolist(),
        )
        dt = self.interval_ms
        return [_kline_row(t[i], dt, (o[i], h[i], low[i], cl[i], v[i])) for i in range(hi - lo)]


@dataclass(frozen=True)
class WindowStats:
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    count: int


class SymbolMarket:
    """One symbol's candle series; the finest one (`base`) defines the price path."""

    def __init__(self, symbol: str, series: Iterable[Series]) -> None:
        self.symbol = symbol
        self.base_asset, self.quote_asset = parse_symbol(symbol)
        self.id = self.base_asset + self.quote_asset
        by_interval = {s.interval_ms: s for s in series}
        if not by_interval:
            raise ValueError(f"{symbol}: no candles")
        self._series = by_interval
        self.base = by_interval[min(by_interval)]
        if len(self.base.candles) == 0:
            raise ValueError(f"{symbol}: the candle file is empty")
        closes = self.base.candles.close
        self.rules = SymbolRules.for_pair(self.base_asset, float(np.median(closes)))
        # prices between candle points are rounded to the tick, as every real trade price is
        self._decimals = max(-int(self.rules.tick_size.as_tuple().exponent), 0)

    @property
    def first_ms(self) -> int:
        return int(self.base.candles.time[0])

    @property
    def end_ms(self) -> int:
        return int(self.base.candles.time[-1]) + self.base.interval_ms

    @property
    def intervals(self) -> list[int]:
        return sorted(self._series)

    def series_for(self, interval_ms: int) -> Series | None:
        """The native series, or one aggregated from the base series when the interval is a multiple of it."""
        series = self._series.get(interval_ms)
        if series is None and interval_ms % self.base.interval_ms == 0 and interval_ms > self.base.interval_ms:
            series = Series(interval_ms, aggregate(self.base.candles, interval_ms))
            self._series[interval_ms] = series
        return series

    # --- the price path
    def _points(self, i: int) -> tuple[float, float, float, float]:
        c = self.base.candles
        return _path_points(float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]))

    def _locate(self, t: int) -> int:
        return int(np.searchsorted(self.base.candles.time, t, side="right")) - 1

    def price_at(self, t: int) -> float:
        """The replay price at `t`: on the path inside a candle, the last close in a gap or after the data."""
        i = self._locate(t)
        if i < 0:
            return float(self.base.candles.open[0])
        fraction = (t - int(self.base.candles.time[i])) / self.base.interval_ms
        if fraction >= 1.0:
            return float(self.base.candles.close[i])
        return round(_path_price(self._points(i), fraction), self._decimals)

    def path_range(self, t0: int, t1: int) -> tuple[float, float]:
        """(lowest, highest) price on the path between t0 and t1 (inclusive)."""
        if t1 < t0:
            t0, t1 = t1, t0
        p0, p1 = self.price_at(t0), self.price_at(t1)
        lo, hi = min(p0, p1), max(p0, p1)
        c = self.base.candles
        dt = self.base.interval_ms
        j0, j1 = self._locate(t0), self._locate(t1)
        if j1 - j0 > 1:
            lo = min(lo, float(c.low[j0 + 1 : j1].min()))
            hi = max(hi, float(c.high[j0 + 1 : j1].max()))
        for j in {j0, j1}:
            if j < 0:
                continue
            start = int(c.time[j])
            for k, value in enumerate(self._points(j)):
                at = start + (dt * k) // 3
                if t0 <= at <= t1:
                    lo, hi = min(lo, value), max(hi, value)
        return lo, hi

    def first_crossing(self, t0: int, t1: int, price: float, *, falling: bool) -> int | None:
        """The first time in [t0, t1] at which the path is at or below `price` (`falling`), or at or above it;
        None if it never gets there. A stop order triggers at exactly this replay time."""
        if t1 < t0:
            return None
        c = self.base.candles
        reached = c.low <= price if falling else c.high >= price
        j0, j1 = self._locate(t0), self._locate(t1)
        candidates = [j0] if j0 >= 0 else []
        later = np.flatnonzero(reached[max(j0 + 1, 0) : j1 + 1])
        if len(later):
            candidates.append(max(j0 + 1, 0) + int(later[0]))
        for j in candidates:
            found = self._crossing_in_candle(j, t0, t1, price, falling)
            if found is not None:
                return found
        if j0 >= 0 and int(c.time[j0]) + self.base.interval_ms <= t0:  # t0 in a gap: the price is the last close
            close = float(c.close[j0])
            if (close <= price) if falling else (close >= price):
                return t0
        return None

    def _crossing_in_candle(self, j: int, t0: int, t1: int, price: float, falling: bool) -> int | None:
        start, dt = int(self.base.candles.time[j]), self.base.interval_ms
        points = self._points(j)
        for k in range(3):
            seg_start, seg_end = start + (dt * k) // 3, start + (dt * (k + 1)) // 3
            lo, hi = max(seg_start, t0), min(seg_end, t1)
            if lo > hi:
                continue
            a, b = points[k], points[k + 1]

            def at(t: int, a: float = a, b: float = b, s: int = seg_start, e: int = seg_end) -> float:
                return a + (b - a) * (t - s) / max(e - s, 1)

            p_lo, p_hi = at(lo), at(hi)
            if (p_lo <= price) if falling else (p_lo >= price):
                return lo
            if (p_hi <= price) if falling else (p_hi >= price):
                # linear in between: the moment it reaches `price`, rounded up to the next millisecond
                return min(hi, lo + math.ceil((p_lo - price) / (p_lo - p_hi) * (hi - lo)))
        return None

    def _partial_ohlcv(self, series: Series, i: int, now: int) -> tuple[float, float, float, float, float]:
        """The candle `i` of `series` as it looks at `now` (built from the base series)."""
        start = int(series.candles.time[i])
        base = self.base.candles
        dt = self.base.interval_ms
        b0 = int(np.searchsorted(base.time, start, side="left"))
        b1 = int(np.searchsorted(base.time, now, side="right"))
        b1 = min(b1, int(np.searchsorted(base.time, start + series.interval_ms, side="left")))
        if b1 <= b0:  # no base candle inside (should not happen): fall back to this candle's own path
            points = _path_points(
                float(series.candles.open[i]),
                float(series.candles.high[i]),
                float(series.candles.low[i]),
                float(series.candles.close[i]),
            )
            fraction = (now - start) / series.interval_ms
            h, lo, price = _path_partial(points, fraction)
            price = round(price, self._decimals)
            return points[0], max(h, price), min(lo, price), price, float(series.candles.volume[i]) * fraction
        last = b1 - 1
        fraction = min((now - int(base.time[last])) / dt, 1.0)
        h, lo, price = _path_partial(self._points(last), fraction)
        price = round(price, self._decimals)
        h, lo = max(h, price), min(lo, price)
        volume = float(base.volume[last]) * fraction
        if last > b0:
            h = max(h, float(base.high[b0:last].max()))
            lo = min(lo, float(base.low[b0:last].min()))
            volume += float(base.volume[b0:last].sum())
        return float(base.open[b0]), h, lo, price, volume

    def klines_json(self, interval_ms: int, start: int | None, end: int | None, limit: int, now: int) -> str:
        """Binance /api/v3/klines rows as a JSON array; nothing that opens after `now` is served."""
        series = self.series_for(interval_ms)
        if series is None:
            return "[]"
        times = series.candles.time
        upper = now if end is None else min(end, now)
        if start is not None:
            i0 = int(np.searchsorted(times, start, side="left"))
            i1 = min(int(np.searchsorted(times, upper, side="right")), i0 + limit)
        else:
            i1 = int(np.searchsorted(times, upper, side="right"))
            i0 = max(0, i1 - limit)
        if i1 <= i0:
            return "[]"
        rows = series.rows(i0, i1)
        last = i1 - 1
        last_open = int(times[last])
        if last_open + series.interval_ms > now:
            rows[-1] = _kline_row(last_open, series.interval_ms, self._partial_ohlcv(series, last, now))
        return "[" + ",".join(rows) + "]"

    def window(self, t0: int, t1: int) -> WindowStats:
        """Open/high/low/close/volume between t0 and t1 on the path (for the 24h ticker)."""
        lo, hi = self.path_range(t0, t1)
        base = self.base.candles
        b0 = int(np.searchsorted(base.time, t0, side="left"))
        b1 = int(np.searchsorted(base.time, t1, side="right"))
        volume = float(base.volume[b0:b1].sum()) if b1 > b0 else 0.0
        if b1 > b0 and int(base.time[b1 - 1]) + self.base.interval_ms > t1:
            fraction = (t1 - int(base.time[b1 - 1])) / self.base.interval_ms
            volume -= float(base.volume[b1 - 1]) * (1.0 - fraction)
        close = self.price_at(t1)
        return WindowStats(self.price_at(t0), hi, lo, close, volume, volume * (lo + hi) / 2.0, max(b1 - b0, 0) * 7)


class Market:
    """All symbols, keyed by Binance id (BTCUSDT) and by ccxt symbol (BTC/USDT)."""

    def __init__(self, symbols: Iterable[SymbolMarket]) -> None:
        self.by_id = {s.id: s for s in sorted(symbols, key=lambda s: s.id)}
        if not self.by_id:
            raise ValueError("the market has no symbols")
        self.by_symbol = {s.symbol: s for s in self.by_id.values()}

    @property
    def first_ms(self) -> int:
        return min(s.first_ms for s in self.by_id.values())

    @property
    def end_ms(self) -> int:
        return max(s.end_ms for s in self.by_id.values())

    def get(self, symbol_id: str) -> SymbolMarket | None:
        return self.by_id.get(symbol_id)


def synthetic_candles(
    base_asset: str, start_price: float, *, count: int, interval_ms: int, seed: int, index: int
) -> Candles:
    """A geometric random walk with wicks; the same seed gives the same history."""
    rng = np.random.default_rng([seed, index])
    sigma = 0.0009 * math.sqrt(interval_ms / MINUTE_MS)
    returns = rng.normal(0.0, sigma, count)
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.concatenate(([start_price], close[:-1]))
    wick_up = np.abs(rng.normal(0.0, sigma / 2, count))
    wick_down = np.abs(rng.normal(0.0, sigma / 2, count))
    rules = SymbolRules.for_pair(base_asset, start_price)
    decimals = max(-int(rules.tick_size.as_tuple().exponent), 0)
    open_r: FloatArray = np.round(open_, decimals).astype(np.float64)
    close_r: FloatArray = np.round(close, decimals).astype(np.float64)
    high = np.maximum(np.round(np.maximum(open_, close) * (1 + wick_up), decimals), np.maximum(open_r, close_r))
    low = np.minimum(np.round(np.minimum(open_, close) * (1 - wick_down), decimals), np.minimum(open_r, close_r))
    volume = np.round(rng.lognormal(mean=math.log(50_000 / start_price), sigma=0.6, size=count), 5)
    time = SYNTHETIC_EPOCH_MS + np.arange(count, dtype=np.int64) * interval_ms
    return Candles(time, open_r, high.astype(np.float64), low.astype(np.float64), close_r, volume.astype(np.float64))

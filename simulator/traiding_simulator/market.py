"""Replayed market data: candle series per symbol on the price path of `traiding.domain.pricepath`, klines
with no look-ahead (the current candle is partial), the order book of `traiding.domain.orderbook` around the
path's price, and a seeded synthetic market.

All times here are replay-clock milliseconds. Nothing here loops over candles in Python: slices and
reductions are numpy; the per-row Python work is formatting each kline row once (cached), and the klines
finer than the data (1s from 1m candles), which are read off the path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from traiding.domain.candles import Candles, FloatArray, IntArray
from traiding.domain.orderbook import Book, BookModel
from traiding.domain.pricepath import PricePath, path_points, path_so_far
from traiding_simulator.filters import SymbolRules

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
# Binance's kline intervals of a fixed length; "1M" (calendar months) is the one more it serves.
INTERVAL_MS: dict[str, int] = {
    "1s": 1000,
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
MONTH = "1M"
KLINE_INTERVALS = (*INTERVAL_MS, MONTH)
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


def month_starts(times: IntArray) -> IntArray:
    """The first millisecond of each time's calendar month (UTC)."""
    months = times.astype("datetime64[ms]").astype("datetime64[M]")
    return months.astype("datetime64[ms]").astype(np.int64)


def aggregate_months(candles: Candles) -> tuple[Candles, IntArray]:
    """Calendar-month candles (Binance's 1M) and each one's close time (the month's last millisecond)."""
    starts_of = month_starts(candles.time)
    starts = np.flatnonzero(np.concatenate(([True], starts_of[1:] != starts_of[:-1])))
    ends = np.concatenate((starts[1:], [len(starts_of)])) - 1
    opens = starts_of[starts]
    next_month = (opens.astype("datetime64[ms]").astype("datetime64[M]") + 1).astype("datetime64[ms]")
    months = Candles(
        time=opens.astype(np.int64),
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends],
        volume=np.add.reduceat(candles.volume, starts),
    )
    return months, next_month.astype(np.int64) - 1


def shift(candles: Candles, offset_ms: int) -> Candles:
    return Candles(
        candles.time + np.int64(offset_ms), candles.open, candles.high, candles.low, candles.close, candles.volume
    )


def fmt_number(value: float, decimals: int = 8) -> str:
    """Binance's number strings: 8 decimals (the symbol's precision), the value rounded to `decimals` first (a
    price to its tick), so a price never shows more digits than the exchange trades at."""
    return f"{round(value, decimals):.8f}"


def _kline_row(t: int, close_time: int, ohlcv: tuple[float, float, float, float, float], decimals: int) -> str:
    o, h, lo, c, v = ohlcv
    quote_volume = v * (o + h + lo + c) / 4.0
    trades = int(v * 7) + 1 if v > 0 else 0
    p = decimals
    return (
        f'[{t},"{fmt_number(o, p)}","{fmt_number(h, p)}","{fmt_number(lo, p)}","{fmt_number(c, p)}",'
        f'"{fmt_number(v)}",{close_time},"{quote_volume:.8f}",{trades},"{v / 2:.8f}","{quote_volume / 2:.8f}","0"]'
    )


@dataclass(eq=False)
class Series:
    """Candles at one interval, with their kline JSON rows formatted lazily and cached per chunk.

    `close_times` is given for calendar months, whose lengths differ; other intervals close `interval_ms` later.
    """

    interval_ms: int
    candles: Candles
    decimals: int = 8
    close_times: IntArray | None = None
    _chunks: dict[int, list[str]] = field(default_factory=dict)

    def close_time(self, i: int) -> int:
        if self.close_times is not None:
            return int(self.close_times[i])
        return int(self.candles.time[i]) + self.interval_ms - 1

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
        return [
            _kline_row(t[i], self.close_time(lo + i), (o[i], h[i], low[i], cl[i], v[i]), self.decimals)
            for i in range(hi - lo)
        ]


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
    """One symbol's candle series; the finest one (`base`) defines the price path and the order book."""

    def __init__(self, symbol: str, series: Iterable[Series]) -> None:
        self.symbol = symbol
        self.base_asset, self.quote_asset = parse_symbol(symbol)
        self.id = self.base_asset + self.quote_asset
        by_interval = {s.interval_ms: s for s in series}
        if not by_interval:
            raise ValueError(f"{symbol}: no candles")
        self.base = by_interval[min(by_interval)]
        if len(self.base.candles) == 0:
            raise ValueError(f"{symbol}: the candle file is empty")
        closes = self.base.candles.close
        self.rules = SymbolRules.for_pair(self.base_asset, float(np.median(closes)))
        # prices between candle points are rounded to the tick, as every real trade price is
        self.decimals = max(-int(self.rules.tick_size.as_tuple().exponent), 0)
        self._series = {i: Series(i, s.candles, self.decimals) for i, s in by_interval.items()}
        self.base = self._series[self.base.interval_ms]
        self.path = PricePath(self.base.candles, self.base.interval_ms, self.decimals)
        self._months: Series | None = None

    @property
    def first_ms(self) -> int:
        return int(self.base.candles.time[0])

    @property
    def end_ms(self) -> int:
        return int(self.base.candles.time[-1]) + self.base.interval_ms

    @property
    def intervals(self) -> list[int]:
        return sorted(self._series)

    def price_text(self, price: float) -> str:
        """A price as Binance writes it for this symbol: on the tick, 8 decimals."""
        return fmt_number(price, self.decimals)

    def series_for(self, interval_ms: int) -> Series | None:
        """The native series, or one aggregated from the base series when the interval is a multiple of it."""
        series = self._series.get(interval_ms)
        if series is None and interval_ms % self.base.interval_ms == 0 and interval_ms > self.base.interval_ms:
            series = Series(interval_ms, aggregate(self.base.candles, interval_ms), self.decimals)
            self._series[interval_ms] = series
        return series

    def months(self) -> Series:
        if self._months is None:
            candles, closes = aggregate_months(self.base.candles)
            self._months = Series(31 * DAY_MS, candles, self.decimals, closes)
        return self._months

    # --- the price path and the book
    def price_at(self, t: int) -> float:
        """The replay price at `t`: on the path inside a candle, the last close in a gap or after the data."""
        return self.path.price_at(t)

    def path_range(self, t0: int, t1: int) -> tuple[float, float]:
        """(lowest, highest) price on the path between t0 and t1 (inclusive)."""
        return self.path.range(t0, t1)

    def first_crossing(self, t0: int, t1: int, price: float, *, falling: bool) -> int | None:
        return self.path.first_crossing(t0, t1, price, falling=falling)

    def book(self, model: BookModel, t: int, depth: int) -> Book:
        """The order book at `t`: `model`'s levels around the path's price, shaped by the last closed candle."""
        return model.book_at(self.id, self.path, t, tick=self.rules.tick_size, step=self.rules.step_size, depth=depth)

    def average_price(self, t: int, minutes: int) -> float:
        """Binance's avgPrice: the volume-weighted price of the last `minutes` (the last price if nothing traded)."""
        return self.path.volume_weighted_price(t - minutes * MINUTE_MS, t)[1]

    # --- klines
    def _partial_ohlcv(self, series: Series, i: int, now: int) -> tuple[float, float, float, float, float]:
        """The candle `i` of `series` as it looks at `now` (built from the base series)."""
        start = int(series.candles.time[i])
        base = self.base.candles
        dt = self.base.interval_ms
        b0 = int(np.searchsorted(base.time, start, side="left"))
        b1 = int(np.searchsorted(base.time, now, side="right"))
        b1 = min(b1, int(np.searchsorted(base.time, series.close_time(i) + 1, side="left")))
        if b1 <= b0:  # no base candle inside (should not happen): fall back to this candle's own path
            points = path_points(
                float(series.candles.open[i]),
                float(series.candles.high[i]),
                float(series.candles.low[i]),
                float(series.candles.close[i]),
            )
            fraction = (now - start) / series.interval_ms
            h, lo, price = path_so_far(points, fraction)
            price = round(price, self.decimals)
            return points[0], max(h, price), min(lo, price), price, float(series.candles.volume[i]) * fraction
        last = b1 - 1
        fraction = min((now - int(base.time[last])) / dt, 1.0)
        h, lo, price = path_so_far(self.path.points(last), fraction)
        price = round(price, self.decimals)
        h, lo = max(h, price), min(lo, price)
        volume = float(base.volume[last]) * fraction
        if last > b0:
            h = max(h, float(base.high[b0:last].max()))
            lo = min(lo, float(base.low[b0:last].min()))
            volume += float(base.volume[b0:last].sum())
        return float(base.open[b0]), h, lo, price, volume

    def klines_json(self, interval: str, start: int | None, end: int | None, limit: int, now: int) -> str:
        """Binance /api/v3/klines rows as a JSON array; nothing that opens after `now` is served."""
        upper = now if end is None else min(end, now)
        if interval == MONTH:
            series: Series | None = self.months()
        else:
            interval_ms = INTERVAL_MS[interval]
            if interval_ms < self.base.interval_ms:
                if self.base.interval_ms % interval_ms:
                    return "[]"
                return "[" + ",".join(self._finer_rows(interval_ms, start, upper, limit, now)) + "]"
            series = self.series_for(interval_ms)
        if series is None:
            return "[]"
        times = series.candles.time
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
        if series.close_time(last) >= now:
            ohlcv = self._partial_ohlcv(series, last, now)
            rows[-1] = _kline_row(int(times[last]), series.close_time(last), ohlcv, self.decimals)
        return "[" + ",".join(rows) + "]"

    def _finer_rows(self, dt: int, start: int | None, upper: int, limit: int, now: int) -> list[str]:
        """Klines shorter than the data's candles (Binance's 1s from 1m files), read off the price path inside
        each candle; the volume is the candle's, pro rata. Gaps stay gaps."""
        times = self.base.candles.time
        per = self.base.interval_ms // dt
        starts: list[int] = []
        if start is not None:
            j = max(self.path.locate(start), 0)
            while j < len(times) and len(starts) < limit:
                t0 = int(times[j])
                for k in range(max(0, -(-(start - t0) // dt)), per):
                    if t0 + k * dt > upper or len(starts) >= limit:
                        break
                    starts.append(t0 + k * dt)
                if t0 + per * dt > upper:
                    break
                j += 1
        else:
            j = self.path.locate(upper)
            while j >= 0 and len(starts) < limit:
                t0 = int(times[j])
                for k in range(min(per - 1, (upper - t0) // dt), -1, -1):
                    if len(starts) >= limit:
                        break
                    starts.append(t0 + k * dt)
                j -= 1
            starts.reverse()
        return [self._finer_row(t, dt, now) for t in starts]

    def _finer_row(self, t: int, dt: int, now: int) -> str:
        j = self.path.locate(t)
        candle_end = int(self.base.candles.time[j]) + self.base.interval_ms
        end = min(t + dt, candle_end, now + 1)
        close = self.price_at(end - 1) if end < candle_end else float(self.base.candles.close[j])
        low, high = self.path.range(t, end - 1)
        volume = float(self.base.candles.volume[j]) * (end - t) / self.base.interval_ms
        ohlcv = (self.price_at(t), max(high, close), min(low, close), close, volume)
        return _kline_row(t, t + dt - 1, ohlcv, self.decimals)

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

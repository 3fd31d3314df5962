"""Order books and how orders fill against them: the one fill model of the exchange simulator and the paper broker.

A `Book` is its price levels on each side, best first. `BookModel` derives one from a market's candles, the way
the simulator shows and matches it: the spread is `spread_bps` in a calm market and widens with the previous
candle's range; levels are half a spread apart; each level holds a seeded share of the previous candle's volume
(at least `min_level_notional`), more the further it is from the touch. Only closed candles shape it, so it
never tells the future, and its draws are seeded by the candle's own numbers, so the same candles give the same
book, whenever and wherever it is built.

`execute` fills an order against a book as Binance's matching engine does: levels are taken best first at their
own prices (one fill per level, so a large order pays more the deeper it goes); a MARKET order takes what it
needs and expires with the rest when the book runs out; a LIMIT order takes what its price crosses, then rests
(GTC), expires with the rest (IOC), or fills whole or not at all (FOK). `resting_fill` bounds what a resting
order gets when the market trades through it: the volume that traded at or beyond its price.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from traiding.domain.pricepath import PricePath

Side = Literal["BUY", "SELL"]
TimeInForce = Literal["GTC", "IOC", "FOK"]
ExecutionStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "EXPIRED"]
ZERO = Decimal(0)


def to_grid(value: Decimal, unit: Decimal, rounding: str = ROUND_FLOOR) -> Decimal:
    """`value` rounded to a whole number of `unit`s (a tick or a lot step)."""
    return (value / unit).to_integral_value(rounding) * unit


@dataclass(frozen=True)
class Level:
    price: Decimal
    qty: Decimal


@dataclass(frozen=True)
class Book:
    bids: Sequence[Level]  # highest first
    asks: Sequence[Level]  # lowest first

    def side_for(self, taker: Side) -> Sequence[Level]:
        """The levels an order of `taker` side takes: a buy takes the asks, a sell the bids."""
        return self.asks if taker == "BUY" else self.bids

    @classmethod
    def of_floats(cls, bids: Iterable[Sequence[float]], asks: Iterable[Sequence[float]]) -> Book:
        """A book from a client library's float levels ([[price, amount], ...]), as exact decimals."""

        def levels(rows: Iterable[Sequence[float]]) -> tuple[Level, ...]:
            return tuple(Level(Decimal(repr(float(r[0]))), Decimal(repr(float(r[1])))) for r in rows if r[1] > 0)

        return cls(levels(bids), levels(asks))


class _GridSide(Sequence[Level]):
    """One side of a modelled book: prices in ticks and sizes in lot steps (integers), made Decimal when read."""

    def __init__(self, ticks: npt.NDArray[np.int64], steps: npt.NDArray[np.int64], tick: Decimal, step: Decimal):
        keep = ticks > 0
        self._ticks, self._steps = ticks[keep], steps[keep]
        self._tick, self._step = tick, step

    def __len__(self) -> int:
        return int(self._ticks.shape[0])

    @overload
    def __getitem__(self, index: int) -> Level: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Level]: ...
    def __getitem__(self, index: int | slice) -> Level | Sequence[Level]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Level(Decimal(int(self._ticks[index])) * self._tick, Decimal(int(self._steps[index])) * self._step)


@dataclass(frozen=True)
class Reference:
    """What shapes the book: the last closed candle's range and volume (nothing of the future)."""

    open: float
    high: float
    low: float
    close: float
    volume: float

    def seed_material(self) -> int:
        return zlib.crc32(struct.pack("<5d", self.open, self.high, self.low, self.close, self.volume))

    @classmethod
    def at(cls, path: PricePath, t: int) -> Reference:
        """The candle that shapes the book at `t`: the last one closed by then (in a gap: the one before it)."""
        c = path.candles
        i = path.locate(t)
        if i > 0 and int(c.time[i]) + path.interval_ms > t:
            i -= 1  # `t` is inside candle i, which has not closed yet
        i = max(i, 0)
        return cls(float(c.open[i]), float(c.high[i]), float(c.low[i]), float(c.close[i]), float(c.volume[i]))


@dataclass(frozen=True)
class BookModel:
    """How the book around a price is derived from candles (see module doc); every number has a realistic default."""

    spread_bps: float = 2.0  # full bid/ask spread in a market that does not move
    volatility_spread: float = 0.05  # added full spread per basis point of the previous candle's range
    depth_fraction: float = 0.005  # average share of the previous candle's volume at the touch
    min_level_notional: float = 1_000.0  # a level holds at least this much quote currency
    depth_growth: float = 0.1  # each level further from the touch holds this much more (level 10: double)
    seed: int = 7

    def spread_bps_for(self, mid: float, reference: Reference) -> float:
        range_bps = (reference.high - reference.low) / mid * 10_000 if mid > 0 else 0.0
        return self.spread_bps + self.volatility_spread * max(range_bps, 0.0)

    def book(self, symbol: str, mid: float, reference: Reference, *, tick: Decimal, step: Decimal, depth: int) -> Book:
        """`depth` levels a side around `mid` on the tick grid, quantities on the lot step."""
        half = self.spread_bps_for(mid, reference) / 20_000
        mid_ticks = Decimal(repr(mid)) / tick
        bid = max(int((mid_ticks * Decimal(repr(1 - half))).to_integral_value(ROUND_FLOOR)), 1)
        ask = max(int((mid_ticks * Decimal(repr(1 + half))).to_integral_value(ROUND_CEILING)), bid + 1)
        gap = max(int((mid_ticks * Decimal(repr(half))).to_integral_value(ROUND_FLOOR)), 1)
        # "BTC/USDT" and "BTCUSDT" are one market: the simulator and a client see the same book
        market = zlib.crc32(symbol.replace("/", "").upper().encode())
        rng = np.random.default_rng([self.seed, market, reference.seed_material()])
        draws = rng.random((depth, 2)).T  # level by level: a deeper book starts with the same levels
        base = max(reference.volume * self.depth_fraction, self.min_level_notional / mid if mid > 0 else 0.0)
        sizes = base * (0.5 + draws) * (1.0 + self.depth_growth * np.arange(depth))  # [bids, asks]
        steps = np.maximum(np.floor(sizes / float(step)), 1).astype(np.int64)
        offsets = np.arange(depth, dtype=np.int64) * gap
        return Book(
            bids=_GridSide(bid - offsets, steps[0], tick, step),
            asks=_GridSide(ask + offsets, steps[1], tick, step),
        )

    def book_at(self, symbol: str, path: PricePath, t: int, *, tick: Decimal, step: Decimal, depth: int) -> Book:
        """The book of a market that moves along `path`, at `t`."""
        return self.book(symbol, path.price_at(t), Reference.at(path, t), tick=tick, step=step, depth=depth)


@dataclass(frozen=True)
class Fill:
    price: Decimal
    qty: Decimal

    @property
    def quote(self) -> Decimal:
        return self.price * self.qty


@dataclass(frozen=True)
class Execution:
    fills: tuple[Fill, ...]
    status: ExecutionStatus

    @property
    def qty(self) -> Decimal:
        return sum((f.qty for f in self.fills), ZERO)

    @property
    def quote(self) -> Decimal:
        return sum((f.quote for f in self.fills), ZERO)

    @property
    def average(self) -> Decimal | None:
        qty = self.qty
        return self.quote / qty if qty > 0 else None


def crosses(side: Side, level_price: Decimal, limit: Decimal) -> bool:
    """Whether a taker of `side` with `limit` may take a level at `level_price`."""
    return level_price <= limit if side == "BUY" else level_price >= limit


def take(
    levels: Iterable[Level],
    side: Side,
    *,
    qty: Decimal | None = None,
    quote: Decimal | None = None,
    limit: Decimal | None = None,
    step: Decimal,
) -> list[Fill]:
    """Walk `levels` best first until `qty` (or, for a buy by quote amount, `quote`) is filled, the levels run
    out, or (with `limit`) the next level's price is beyond it. Quantities stay on the lot `step`."""
    if (qty is None) == (quote is None):
        raise ValueError("give either qty or quote")
    fills: list[Fill] = []
    left_qty, left_quote = qty, quote
    for level in levels:
        if limit is not None and not crosses(side, level.price, limit):
            break
        if left_qty is not None:
            amount = min(level.qty, left_qty)
        else:
            assert left_quote is not None  # nosec B101  # narrows a type
            amount = min(level.qty, to_grid(left_quote / level.price, step))
        if amount <= 0:
            break
        fills.append(Fill(level.price, amount))
        if left_qty is not None:
            left_qty -= amount
            if left_qty <= 0:
                break
        else:
            assert left_quote is not None  # nosec B101  # narrows a type
            left_quote -= amount * level.price
            if amount < level.qty:  # the money ran out inside this level
                break
    return fills


def execute(
    book: Book,
    side: Side,
    *,
    qty: Decimal | None = None,
    quote: Decimal | None = None,
    limit: Decimal | None = None,
    time_in_force: TimeInForce = "GTC",
    step: Decimal,
) -> Execution:
    """What an order that arrives at `book` gets at once (see module doc). Without `limit` it is a MARKET order."""
    levels = book.side_for(side)
    fills = take(levels, side, qty=qty, quote=quote, limit=limit, step=step)
    filled = sum((f.qty for f in fills), ZERO)
    if limit is None:  # MARKET: all of it, or what the book holds and the rest expires
        if qty is not None:
            complete = filled >= qty
        else:  # by quote amount: complete unless every level was taken whole
            complete = bool(fills) and not (len(fills) == len(levels) and fills[-1].qty == levels[-1].qty)
        return Execution(tuple(fills), "FILLED" if complete else "EXPIRED")
    assert qty is not None  # nosec B101  # narrows a type
    if filled >= qty:
        return Execution(tuple(fills), "FILLED")
    if time_in_force == "FOK":
        return Execution((), "EXPIRED")
    if time_in_force == "IOC":
        return Execution(tuple(fills), "EXPIRED")
    return Execution(tuple(fills), "PARTIALLY_FILLED" if fills else "NEW")


def resting_fill(remaining: Decimal, volume_through: float, step: Decimal) -> Decimal:
    """What a resting order of `remaining` gets while `volume_through` traded at or beyond its price: orders at a
    price fill before the market trades past it, so that volume is the order's to take, on the lot step."""
    if volume_through <= 0 or not math.isfinite(volume_through):
        return ZERO
    return min(remaining, to_grid(Decimal(repr(volume_through)), step))

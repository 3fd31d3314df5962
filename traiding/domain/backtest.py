"""A long-only backtester over candles and boolean entry/exit signals, vectorised over candles.

Semantics (the "reference semantics" of the brief; tests/unit/test_backtest_vs_reference.py checks them
against a plain per-candle loop):

- Signals are known at a candle's close. A signal on candle i fills at candle i+1's OPEN (no look-ahead).
  The next candle *present* in the data: a gap is not interpolated, the fill simply happens at the first
  candle after it. A signal on the last candle never fills.
- Long only, one position at a time: entries while in a position and exits while flat are ignored. An entry
  and an exit on the same candle: the exit wins (when flat, nothing happens).
- Entry: `position_fraction` of the current equity buys `qty` at the fill price `p` such that notional plus
  fee equals that amount: `qty = equity * fraction / (p * (1 + fee_rate))`; cash falls by
  `qty * p * (1 + fee_rate)`. This is backtesting.py's convention (its fractional order size is sized on
  the price plus commission), so results compare with it. Exit: cash rises by `qty * p * (1 - fee_rate)`.
- Slippage worsens every fill: buys fill at `price * (1 + slippage)`, sells at `price * (1 - slippage)`.
- Stop loss (`stop_loss_pct`, in percent): the stop sits at `entry_fill * (1 - pct/100)`. From the fill
  candle on, the first candle whose low reaches it closes the position at the stop, or at the open when the
  candle opens below it (a gap), slippage applied. Take profit likewise on the high, at
  `entry_fill * (1 + pct/100)` or the open when it gaps above. Both within one candle: the stop is assumed
  first (pessimistic, as backtesting.py does). An exit signal fills at the next open, before that
  candle's stop/target checks. After a stop or target exit on candle s, an entry signal on candle s's close
  may re-enter at candle s+1's open.
- A position still open after the last candle is closed at the last candle's close (fee and slippage
  applied), with exit reason `end_of_data`, and counted as a trade.
- The equity curve is marked to market at each candle's close: cash, plus `qty * close` while in a position.
  No fill can happen in the first candle, so `equity[0]` is always the initial capital.

Speed is a feature (benchmarks/backtest_vs_peers.py): nothing loops over candles in Python. Without stops
the trades come straight from the signals (the position is whatever the most recent signal says). Stops
and targets only end those trades early, found for all trades at once, unless an entry signal follows an
early exit within the same trade (a re-entry, which alternating signals such as crossovers never produce):
then a loop runs once per trade and finds the stop candle with chunked numpy searches over that trade's
candles. Equity compounds per trade with a cumulative product and the curve is filled per segment.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from traiding.domain.candles import Candles
from traiding.domain.metrics import BacktestMetrics, compute_metrics

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

ExitReason = Literal["signal", "stop_loss", "take_profit", "end_of_data"]
EXIT_REASONS: tuple[ExitReason, ...] = ("signal", "stop_loss", "take_profit", "end_of_data")
_SIGNAL, _STOP_LOSS, _TAKE_PROFIT, _END_OF_DATA = range(4)


class BacktestConfig(BaseModel):
    """How the backtest trades: capital, costs and position sizing. Fractions are 0..1, `_pct` are percent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_capital: float = Field(10_000.0, gt=0, description="starting equity in the quote currency")
    fee_rate: float = Field(0.001, ge=0, lt=1, description="fee as a fraction of notional, charged per side")
    slippage: float = Field(0.0, ge=0, lt=1, description="fraction by which every fill price is worsened")
    position_fraction: float = Field(1.0, gt=0, le=1, description="fraction of equity committed per entry")
    stop_loss_pct: float | None = Field(None, gt=0, lt=100, description="stop loss below the entry, percent")
    take_profit_pct: float | None = Field(None, gt=0, description="take profit above the entry, percent")


@dataclass(frozen=True, eq=False)
class Trade:
    """One round trip, as a plain record (see `Trades.records`). Times are epoch milliseconds."""

    entry_index: int
    exit_index: int
    entry_time: int
    exit_time: int
    entry_price: float
    exit_price: float
    qty: float
    pnl: float
    return_pct: float
    fees: float
    exit_reason: ExitReason

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry_index": self.entry_index,
            "exit_index": self.exit_index,
            "entry_time": self.entry_time,
            "exit_time": self.exit_time,
            "entry_price": self.entry_price,
            "exit_price": self.exit_price,
            "qty": self.qty,
            "pnl": self.pnl,
            "return_pct": self.return_pct,
            "fees": self.fees,
            "exit_reason": self.exit_reason,
        }


@dataclass(frozen=True, eq=False)
class Trades:
    """All trades as columns (one element per trade), so thousands of trades cost no Python objects.

    `entry_index`/`exit_index` are the candles in which the fills happened; `entry_time`/`exit_time` their
    open times (an end-of-data exit happens at that candle's close). Prices are fill prices (slippage
    included); `pnl` is net of both fees; `return_pct` is pnl over the capital committed (notional plus
    entry fee); `fees` is both sides' fees.
    """

    entry_index: IntArray
    exit_index: IntArray
    entry_time: IntArray
    exit_time: IntArray
    entry_price: FloatArray
    exit_price: FloatArray
    qty: FloatArray
    pnl: FloatArray
    return_pct: FloatArray
    fees: FloatArray
    exit_reason_code: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.entry_index.shape[0])

    @property
    def exit_reason(self) -> list[ExitReason]:
        return [EXIT_REASONS[int(code)] for code in self.exit_reason_code]

    def records(self) -> list[Trade]:
        reasons = self.exit_reason
        return [
            Trade(
                entry_index=int(self.entry_index[k]),
                exit_index=int(self.exit_index[k]),
                entry_time=int(self.entry_time[k]),
                exit_time=int(self.exit_time[k]),
                entry_price=float(self.entry_price[k]),
                exit_price=float(self.exit_price[k]),
                qty=float(self.qty[k]),
                pnl=float(self.pnl[k]),
                return_pct=float(self.return_pct[k]),
                fees=float(self.fees[k]),
                exit_reason=reasons[k],
            )
            for k in range(len(self))
        ]


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Trades, the per-candle mark-to-market equity curve (same length as the candles), and the metrics."""

    config: BacktestConfig
    trades: Trades
    equity: FloatArray
    metrics: BacktestMetrics


@dataclass(frozen=True, eq=False)
class _Boundaries:
    """Where each trade fills: entry candle, exit candle, raw exit price (before slippage) and why."""

    entry_index: IntArray
    exit_index: IntArray
    raw_exit_price: FloatArray
    reason: npt.NDArray[np.int8]


def run_backtest(
    candles: Candles,
    entries: npt.ArrayLike,
    exits: npt.ArrayLike,
    config: BacktestConfig | None = None,
) -> BacktestResult:
    """Backtest boolean `entries`/`exits` (known at each candle's close) over `candles`; see the module doc.

    The candles must be in strictly ascending time order (`candles.normalize` sorts and dedupes a file).
    """
    config = config or BacktestConfig()
    n = len(candles)
    if n > 1 and bool((candles.time[1:] <= candles.time[:-1]).any()):
        raise ValueError("candles must be in strictly ascending time order without duplicates (see normalize)")
    entry_signals = _as_signal(entries, n, "entries")
    exit_signals = _as_signal(exits, n, "exits")
    if config.stop_loss_pct is None and config.take_profit_pct is None:
        bounds = _boundaries_from_signals(candles, entry_signals, exit_signals)
    else:
        bounds = _boundaries_with_stops(candles, entry_signals, exit_signals, config)
    trades, equity = _account(candles, bounds, config)
    metrics = compute_metrics(candles.time, equity, trades, config.initial_capital, close=candles.close)
    return BacktestResult(config=config, trades=trades, equity=equity, metrics=metrics)


def _as_signal(values: npt.ArrayLike, n: int, name: str) -> BoolArray:
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(f"{name} must be a 1-d array with one value per candle ({n}), got shape {array.shape}")
    if array.dtype != np.bool_:
        array = array.astype(np.bool_)
    return array


def _tradable(entries: BoolArray, exits: BoolArray) -> tuple[BoolArray, BoolArray]:
    """Signals that can fill: none on the last candle; an exit beats an entry on the same candle."""
    usable_exits = exits[:-1]
    return entries[:-1] & ~usable_exits, usable_exits


def _boundaries_from_signals(candles: Candles, entries: BoolArray, exits: BoolArray) -> _Boundaries:
    """Without stops the position is what the most recent signal says; trades are its changes."""
    n = len(candles)
    if n < 2:
        return _empty_boundaries()
    entry_ok, exit_ok = _tradable(entries, exits)
    code = entry_ok.astype(np.int8) - exit_ok.astype(np.int8)  # +1 entry, -1 exit, 0 nothing
    at = np.flatnonzero(code)
    kinds = code[at]
    changes = np.empty(kinds.shape[0], dtype=np.bool_)
    if kinds.shape[0]:
        changes[0] = kinds[0] == 1  # starting flat, only an entry changes anything
        np.not_equal(kinds[1:], kinds[:-1], out=changes[1:])
    events = at[changes]  # alternate: entry, exit, entry, ...
    entry_signal = events[0::2]
    exit_signal = events[1::2]
    entry_index = entry_signal + 1
    open_at_end = entry_signal.shape[0] > exit_signal.shape[0]
    exit_index = np.empty_like(entry_index)
    exit_index[: exit_signal.shape[0]] = exit_signal + 1
    raw_exit = np.empty(entry_index.shape[0], dtype=np.float64)
    raw_exit[: exit_signal.shape[0]] = candles.open[exit_signal + 1]
    reason = np.full(entry_index.shape[0], _SIGNAL, dtype=np.int8)
    if open_at_end:
        exit_index[-1] = n - 1
        raw_exit[-1] = candles.close[n - 1]
        reason[-1] = _END_OF_DATA
    return _Boundaries(entry_index.astype(np.int64), exit_index.astype(np.int64), raw_exit, reason)


def _boundaries_with_stops(
    candles: Candles, entries: BoolArray, exits: BoolArray, config: BacktestConfig
) -> _Boundaries:
    """Trades cut short by a stop or target: vectorised when no trade re-enters after one, else per trade."""
    plain = _boundaries_from_signals(candles, entries, exits)
    cut = _cut_plain_trades(candles, entries, exits, plain, config)
    return cut if cut is not None else _boundaries_per_trade(candles, entries, exits, config)


def _cut_plain_trades(
    candles: Candles, entries: BoolArray, exits: BoolArray, plain: _Boundaries, config: BacktestConfig
) -> _Boundaries | None:
    """The signal-only trades with their stop/target exits, all at once; None when that is not the answer.

    A stop or target only ends a trade early. The answer differs from the signal-only trades cut short only
    when an entry signal follows such an early exit before the trade's own exit signal (a re-entry the
    signal-only trades never saw): then None, and the per-trade loop decides.
    """
    n = len(candles)
    count = plain.entry_index.shape[0]
    if count == 0:
        return plain
    fill = plain.entry_index
    at_end = plain.reason == _END_OF_DATA
    # The last candle whose range can reach the stop: the exit signal's candle, or the last candle.
    last = np.where(at_end, n - 1, plain.exit_index - 1)
    end = last + 1
    entry_price = candles.open[fill] * (1.0 + config.slippage)
    delta = np.zeros(n + 1, dtype=np.int64)
    delta[fill] += 1
    delta[end] -= 1
    inside = np.cumsum(delta[:n]) > 0
    started = np.zeros(n, dtype=np.int64)
    started[fill] = 1
    trade_id = np.maximum(np.cumsum(started) - 1, 0)

    stop_at = end.copy()
    stop = np.zeros(count)
    if config.stop_loss_pct is not None:
        stop = entry_price * (1.0 - config.stop_loss_pct / 100.0)
        _first_per_trade(inside & (candles.low <= stop[trade_id]), trade_id, stop_at)
    target_at = end.copy()
    target = np.zeros(count)
    if config.take_profit_pct is not None:
        target = entry_price * (1.0 + config.take_profit_pct / 100.0)
        # Only a target reached before the stop's candle counts: on that candle the stop is assumed first.
        before_stop = np.arange(n) < stop_at[trade_id]
        _first_per_trade(inside & before_stop & (candles.high >= target[trade_id]), trade_id, target_at)

    by_target = target_at < stop_at
    by_stop = ~by_target & (stop_at < end)
    early_at = np.where(by_target, target_at, np.where(by_stop, stop_at, end))
    early = early_at < end
    if early.any():
        # Would an entry signal between the early exit (its own close included) and `last` re-enter?
        entry_ok, _ = _tradable(entries, exits)
        seen = np.concatenate(([0], np.cumsum(entry_ok, dtype=np.int64)))
        upto = np.minimum(last, n - 2) + 1
        if bool((seen[upto[early]] - seen[early_at[early]] > 0).any()):
            return None

    exit_index = np.where(early, early_at, plain.exit_index)
    raw_exit = plain.raw_exit_price.copy()
    exit_open = candles.open[np.minimum(early_at, n - 1)]
    raw_exit = np.where(by_stop, np.minimum(exit_open, stop), raw_exit)
    raw_exit = np.where(by_target, np.maximum(exit_open, target), raw_exit)
    reason = plain.reason.copy()
    reason[by_stop] = _STOP_LOSS
    reason[by_target] = _TAKE_PROFIT
    return _Boundaries(fill, exit_index.astype(np.int64), raw_exit, reason)


def _first_per_trade(hit: BoolArray, trade_id: IntArray, out: IntArray) -> None:
    """Set `out[k]` to the first candle index where `hit` holds within trade k (trades with no hit keep theirs)."""
    at = np.flatnonzero(hit)
    if at.shape[0] == 0:
        return
    owner = trade_id[at]
    first = np.empty(at.shape[0], dtype=np.bool_)
    first[0] = True
    np.not_equal(owner[1:], owner[:-1], out=first[1:])
    out[owner[first]] = at[first]


def _boundaries_per_trade(
    candles: Candles, entries: BoolArray, exits: BoolArray, config: BacktestConfig
) -> _Boundaries:
    """One iteration per trade: next entry, next exit signal, and a numpy search for the stop in between."""
    n = len(candles)
    if n < 2:
        return _empty_boundaries()
    entry_ok, exit_ok = _tradable(entries, exits)
    entry_signals: list[int] = np.flatnonzero(entry_ok).tolist()
    exit_signals: list[int] = np.flatnonzero(exit_ok).tolist()
    opens, highs, lows, closes = candles.open, candles.high, candles.low, candles.close
    buy_factor = 1.0 + config.slippage
    stop_factor = None if config.stop_loss_pct is None else 1.0 - config.stop_loss_pct / 100.0
    target_factor = None if config.take_profit_pct is None else 1.0 + config.take_profit_pct / 100.0

    entry_index: list[int] = []
    exit_index: list[int] = []
    raw_exit: list[float] = []
    reason: list[int] = []
    earliest_signal = 0
    while True:
        k = bisect_left(entry_signals, earliest_signal)
        if k == len(entry_signals):
            break
        fill = entry_signals[k] + 1
        m = bisect_left(exit_signals, fill)
        if m < len(exit_signals):
            # The exit signal's candle is the last one whose range can still hit the stop.
            last = exit_signals[m]
            exit_at, exit_price, exit_reason = last + 1, float(opens[last + 1]), _SIGNAL
        else:
            last, exit_at, exit_price, exit_reason = n - 1, n - 1, float(closes[n - 1]), _END_OF_DATA
        entry_price = float(opens[fill]) * buy_factor
        # Candles fill..last can reach the stop or the target; `end` (= last + 1) means "not reached".
        end = last + 1
        stop_at = target_at = end
        if stop_factor is not None:
            stop = entry_price * stop_factor
            stop_at = _first_reaching(lows, fill, end, stop, below=True)
            if stop_at < end:
                exit_at, exit_price, exit_reason = stop_at, min(float(opens[stop_at]), stop), _STOP_LOSS
        if target_factor is not None:
            # Only a target reached before the stop's candle counts: on that candle the stop is assumed first.
            target = entry_price * target_factor
            target_at = _first_reaching(highs, fill, stop_at, target, below=False)
            if target_at < stop_at:
                exit_at, exit_price, exit_reason = target_at, max(float(opens[target_at]), target), _TAKE_PROFIT
        entry_index.append(fill)
        exit_index.append(exit_at)
        raw_exit.append(exit_price)
        reason.append(exit_reason)
        if exit_reason == _END_OF_DATA:
            break
        # After a signal exit at candle x+1 the next entry signal is at x+1 or later (one at x was beaten by
        # the exit); after a stop at candle s an entry signal on s's own close may re-enter.
        earliest_signal = exit_at
    return _Boundaries(
        np.asarray(entry_index, dtype=np.int64),
        np.asarray(exit_index, dtype=np.int64),
        np.asarray(raw_exit, dtype=np.float64),
        np.asarray(reason, dtype=np.int8),
    )


def _first_reaching(values: FloatArray, start: int, end: int, level: float, *, below: bool) -> int:
    """The first index in [start, end) where `values` reach `level` (<= it if `below`, else >=), or `end`.

    Searches in growing chunks, so a stop hit early costs a few candles, not a scan to the next exit
    signal: the total work stays proportional to the candles the trades actually span.
    """
    size = 64
    while start < end:
        stop = min(end, start + size)
        chunk = values[start:stop]
        hit = chunk <= level if below else chunk >= level
        j = int(hit.argmax())
        if hit[j]:
            return start + j
        start, size = stop, size * 8
    return end


def _empty_boundaries() -> _Boundaries:
    return _Boundaries(
        np.empty(0, dtype=np.int64),
        np.empty(0, dtype=np.int64),
        np.empty(0, dtype=np.float64),
        np.empty(0, dtype=np.int8),
    )


def _account(candles: Candles, bounds: _Boundaries, config: BacktestConfig) -> tuple[Trades, FloatArray]:
    """Prices, sizes, fees and pnl per trade (equity compounds by a cumulative product) and the curve."""
    n = len(candles)
    fee, fraction, initial = config.fee_rate, config.position_fraction, config.initial_capital
    entry_price = candles.open[bounds.entry_index] * (1.0 + config.slippage)
    exit_price = bounds.raw_exit_price * (1.0 - config.slippage)
    cost_per_unit = entry_price * (1.0 + fee)
    proceeds_per_unit = exit_price * (1.0 - fee)
    growth = 1.0 - fraction + fraction * (proceeds_per_unit / cost_per_unit)
    equity_after: FloatArray = np.asarray(initial * np.cumprod(growth), dtype=np.float64)
    equity_before = np.empty_like(equity_after)
    if equity_after.shape[0]:
        equity_before[0] = initial
        equity_before[1:] = equity_after[:-1]
    committed = equity_before * fraction
    qty = committed / cost_per_unit
    pnl = qty * proceeds_per_unit - committed
    fees = qty * (entry_price + exit_price) * fee
    trades = Trades(
        entry_index=bounds.entry_index,
        exit_index=bounds.exit_index,
        entry_time=candles.time[bounds.entry_index],
        exit_time=candles.time[bounds.exit_index],
        entry_price=entry_price,
        exit_price=exit_price,
        qty=qty,
        pnl=pnl,
        return_pct=(proceeds_per_unit / cost_per_unit - 1.0) * 100.0,
        fees=fees,
        exit_reason_code=bounds.reason,
    )
    cash_in_trade = np.asarray(equity_before - committed, dtype=np.float64)
    if len(trades) == 0:
        return trades, np.full(n, initial, dtype=np.float64)
    curve = _equity_curve(
        candles, bounds, qty=qty, cash_in_trade=cash_in_trade, equity_after=equity_after, initial=initial
    )
    return trades, curve


def _equity_curve(
    candles: Candles,
    bounds: _Boundaries,
    *,
    qty: FloatArray,
    cash_in_trade: FloatArray,
    equity_after: FloatArray,
    initial: float,
) -> FloatArray:
    """Per candle: flat -> equity after the last closed trade; holding at the close -> cash + qty * close."""
    n = len(candles)
    # Which trade was last entered at or before each candle (-1 before the first).
    started = np.zeros(n, dtype=np.int64)
    started[bounds.entry_index] = 1
    trade_id = np.cumsum(started) - 1
    # Held at the close: from the entry candle up to, not including, the exit candle (the exit empties it).
    held_delta = np.zeros(n + 1, dtype=np.int64)
    held_delta[bounds.entry_index] += 1  # entry candles are distinct, and so are exit candles
    held_delta[bounds.exit_index] -= 1
    held = np.cumsum(held_delta[:n]) > 0
    closed_equity = np.concatenate(([initial], equity_after))[trade_id + 1]
    safe_id = np.maximum(trade_id, 0)
    marked = cash_in_trade[safe_id] + qty[safe_id] * candles.close
    return np.where(held, marked, closed_equity)

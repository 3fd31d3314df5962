"""Performance metrics of a backtest from its equity curve, its trades and the candle times.

Conventions (so figures compare with other tools and stay valid JSON):
- Fields ending in `_pct` are percent (12.5 means 12.5 %); `win_rate` is a fraction (0.55 means 55 %).
- Drawdowns are positive numbers: `max_drawdown_pct` 20 means equity fell 20 % below its running peak.
- Returns are per candle: `r_i = equity_i / equity_(i-1) - 1`. The candle period is the median spacing of
  the candle times (robust to gaps); a year has `365 d / period` candles (crypto trades every day), and
  Sharpe = mean(r) / std(r, ddof=1) * sqrt(candles per year), Sortino = mean(r) / sqrt(mean(min(r, 0)^2))
  * sqrt(candles per year), risk-free rate 0. A return across a gap in the data counts as one candle.
- CAGR uses the span from the first candle's open to the last candle's close; Calmar = CAGR / max drawdown.
- Annualised figures (CAGR, Sharpe, Sortino, Calmar) need a span of at least `MIN_ANNUALISED_DAYS` (7) days.
  Over a shorter span, extrapolating to a year turns noise into huge numbers (a 6-hour session's Sharpe came out
  at 64), so they are None and `annualised_note` says why. Seven days is the shortest span that gives seven
  daily returns, the fewest from which a yearly figure says anything; every backtest gate a manifest sets
  on Sharpe therefore needs a lookback of at least a week.
- `market_change_pct` is buy and hold over the same candles: the last close over the first close, as
  freqtrade's "market change" (the strategy's `total_return_pct` belongs beside it).
- The max drawdown duration is the longest time from a peak to the first candle back at or above it (or to
  the last candle when equity never recovered), in seconds and in candles.
- Exposure counts the candles from each trade's entry candle to its exit candle, both included (as
  backtesting.py counts them), over all candles.
- Undefined values are None (JSON null), never NaN or infinity: no trades -> no win rate, expectancy or
  trade statistics; no losing trade -> no profit factor; constant equity -> no Sharpe or Sortino.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from traiding.domain.timeframes import format_duration

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

YEAR_MS = 365 * 24 * 3600 * 1000
MIN_ANNUALISED_DAYS = 7
MIN_ANNUALISED_SPAN_MS = MIN_ANNUALISED_DAYS * 24 * 3600 * 1000


class TradeColumns(Protocol):
    """What the metrics read of the trades: one array element per trade (see backtest.Trades)."""

    @property
    def entry_index(self) -> IntArray: ...

    @property
    def exit_index(self) -> IntArray: ...

    @property
    def pnl(self) -> FloatArray: ...

    @property
    def return_pct(self) -> FloatArray: ...

    @property
    def fees(self) -> FloatArray: ...


class BacktestMetrics(BaseModel):
    """The figures a trader and the backtest gates read; every float is finite or None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candles: int
    start_time: int | None  # first candle's open time, epoch ms
    end_time: int | None  # last candle's open time, epoch ms
    candle_period_s: float | None
    trades: int
    wins: int
    losses: int
    initial_capital: float
    final_equity: float
    total_return_pct: float
    cagr_pct: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown_pct: float
    max_drawdown_duration_s: float
    max_drawdown_duration_candles: int
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None  # mean pnl per trade, quote currency
    avg_trade_pct: float | None
    best_trade_pct: float | None
    worst_trade_pct: float | None
    exposure_pct: float
    total_fees: float
    market_change_pct: float | None = None  # buy and hold over the same candles (None without prices)
    annualised_note: str | None = None  # why CAGR, Sharpe, Sortino and Calmar are None, when the span is too short

    def gate_values(self) -> dict[str, float | None]:
        """The numeric metrics by name, as `gates.evaluate_gates` reads them."""
        return {k: (None if v is None else float(v)) for k, v in self.model_dump().items() if k != "annualised_note"}

    def notes(self) -> dict[str, str]:
        """Why a metric is None, by metric name, where the reason is known (read by `gates.evaluate_gates`)."""
        if self.annualised_note is None:
            return {}
        return dict.fromkeys(ANNUALISED_METRICS, self.annualised_note)


ANNUALISED_METRICS = ("cagr_pct", "sharpe", "sortino", "calmar")


def compute_metrics(
    time: IntArray,
    equity: FloatArray,
    trades: TradeColumns,
    initial_capital: float,
    *,
    close: FloatArray | None = None,
    span_ms: int | None = None,
    min_annualised_span_ms: int = MIN_ANNUALISED_SPAN_MS,
) -> BacktestMetrics:
    """Metrics of one backtest: `equity` is marked to market at each candle's close, `time` their open times.

    `close` (the candles' closes) gives the market change. `span_ms` is the time the equity covers where the
    caller knows it (a trading session: its duration; default: first open to last close). `min_annualised_span_ms`
    is the shortest span whose annualised figures are reported (tests of the formulas pass 0).
    """
    n = int(equity.shape[0])
    final = float(equity[-1]) if n else float(initial_capital)
    period_ms = _candle_period_ms(time)
    total_return = final / initial_capital - 1.0
    dd_pct, dd_seconds, dd_candles = _drawdown(time, equity)
    if span_ms is None:
        span_ms = int(time[-1] - time[0] + period_ms) if period_ms is not None else 0
    note = None
    if period_ms is not None and span_ms < min_annualised_span_ms:
        note = (
            f"not meaningful over {format_duration(span_ms)}: annualising needs at least "
            f"{format_duration(min_annualised_span_ms)} of candles"
        )

    cagr = None
    if period_ms is not None and note is None:
        cagr = _cagr_pct(total_return, span_ms / YEAR_MS)
    sharpe = sortino = None
    if period_ms is not None and n >= 3 and note is None:
        returns = equity[1:] / equity[:-1] - 1.0
        scale = math.sqrt(YEAR_MS / period_ms)
        mean = float(returns.mean())
        std = float(returns.std(ddof=1))
        sharpe = _finite(mean / std * scale) if std > 0 else None
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
        sortino = _finite(mean / downside * scale) if downside > 0 else None
    calmar = _finite(cagr / dd_pct) if cagr is not None and dd_pct > 0 else None

    count = len(trades.pnl)
    pnl = trades.pnl
    returns_pct = trades.return_pct
    wins = int(np.count_nonzero(pnl > 0))
    losses = int(np.count_nonzero(pnl < 0))
    gross_loss = -float(pnl[pnl < 0].sum())
    held_candles = int((trades.exit_index - trades.entry_index + 1).sum()) if count else 0
    return BacktestMetrics(
        candles=n,
        start_time=int(time[0]) if n else None,
        end_time=int(time[-1]) if n else None,
        candle_period_s=None if period_ms is None else period_ms / 1000.0,
        trades=count,
        wins=wins,
        losses=losses,
        initial_capital=float(initial_capital),
        final_equity=final,
        total_return_pct=total_return * 100.0,
        cagr_pct=cagr,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown_pct=dd_pct,
        max_drawdown_duration_s=dd_seconds,
        max_drawdown_duration_candles=dd_candles,
        win_rate=wins / count if count else None,
        profit_factor=_finite(float(pnl[pnl > 0].sum()) / gross_loss) if gross_loss > 0 else None,
        expectancy=float(pnl.mean()) if count else None,
        avg_trade_pct=float(returns_pct.mean()) if count else None,
        best_trade_pct=float(returns_pct.max()) if count else None,
        worst_trade_pct=float(returns_pct.min()) if count else None,
        exposure_pct=held_candles / n * 100.0 if n else 0.0,
        total_fees=float(trades.fees.sum()),
        market_change_pct=market_change_pct(close) if close is not None else None,
        annualised_note=note,
    )


def market_change_pct(close: FloatArray) -> float | None:
    """Buy and hold in percent: the last close over the first one (None for no candles or a first close <= 0)."""
    if close.shape[0] == 0 or not float(close[0]) > 0:
        return None
    return _finite((float(close[-1]) / float(close[0]) - 1.0) * 100.0)


def _candle_period_ms(time: IntArray) -> float | None:
    if time.shape[0] < 2:
        return None
    steps = np.diff(time)
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.shape[0] else None


def _cagr_pct(total_return: float, years: float) -> float | None:
    if years <= 0:
        return None
    growth = 1.0 + total_return
    if growth <= 0:
        return -100.0
    try:
        return _finite((math.exp(math.log(growth) / years) - 1.0) * 100.0)
    except OverflowError:  # a large gain over a few minutes annualises beyond any float
        return None


def _drawdown(time: IntArray, equity: FloatArray) -> tuple[float, float, int]:
    """Deepest drawdown in percent, and the longest peak-to-recovery span in seconds and candles."""
    n = int(equity.shape[0])
    if n == 0:
        return 0.0, 0.0, 0
    peak = np.maximum.accumulate(equity)
    depth = float((1.0 - equity / peak).max()) * 100.0
    underwater = equity < peak
    if not underwater.any():
        return depth, 0.0, 0
    edges = np.diff(underwater.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)  # first candle under water (>= 1: candle 0 is its own peak)
    ends = np.flatnonzero(edges == -1)  # first candle back at the peak, or n when never recovered
    peaks = starts - 1
    recoveries = np.minimum(ends, n - 1)
    spans_ms = time[recoveries] - time[peaks]
    longest = int(spans_ms.argmax())
    return depth, float(spans_ms[longest]) / 1000.0, int(recoveries[longest] - peaks[longest])


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None

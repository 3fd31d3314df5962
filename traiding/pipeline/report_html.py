"""The building blocks of `report.html`: tables, and charts of price with trades, equity and drawdown as inline SVG.

One self-contained file (no scripts, no network): it opens anywhere, also from a CI artifact. While a run is
unfinished the page carries a `<meta http-equiv="refresh">`, so a browser showing it follows the run; the final
write leaves it out. `report_files` decides what goes in; this module only draws.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 78, 12, 24, 26  # plot margins: room for the value and time labels
MAX_POINTS = 1500
MAX_MARKED_TRADES = 40  # beyond this, trades are drawn as shaded spans: hundreds of triangles hide the price
MAX_TIME_TICKS = 7
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
# Time grid lines fall on whole hours or days (UTC): the coarsest that still gives a few of them.
_TICK_STEPS_MS = tuple(h * HOUR_MS for h in (1, 2, 3, 6, 12)) + tuple(d * DAY_MS for d in (1, 2, 7, 14, 30, 91, 365))
REFRESH_SECONDS = 5


@dataclass(frozen=True)
class TradeSpan:
    """One round trip on a price chart."""

    entry_ms: int
    exit_ms: int
    entry_price: float
    exit_price: float
    pnl: float


@dataclass(frozen=True)
class Cell:
    """A table cell: its text and an optional class (`pass`, `fail`, `num`)."""

    text: str
    cls: str = ""


Row = list[Cell | str]


# ----------------------------------------------------------------------------------------- formatting


def fmt_time(ms: int | float | None) -> str:
    if ms is None:
        return "n/a"
    return datetime.fromtimestamp(float(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def fmt_money(value: float | None, currency: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.2f}" + (f" {currency}" if currency else "")


def fmt_signed_money(value: float | None, currency: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:+,.2f}" + (f" {currency}" if currency else "")


def fmt_pct(value: float | None, *, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def fmt_price(value: float | None) -> str:
    """Prices with the precision their size needs: 35,012.37, 2.4512, 0.000123."""
    if value is None:
        return "n/a"
    size = abs(value)
    if size >= 100:
        return f"{value:,.2f}"
    if size >= 1:
        return f"{value:,.4f}"
    return f"{value:.6g}"


def fmt_number(value: float | None, decimals: int = 2) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{decimals}f}"


# ----------------------------------------------------------------------------------------- tables


def table(kind: str, headers: Sequence[str], rows: Sequence[Row], caption: str = "") -> str:
    """A table of class `kind` (`gates`, `pairs`, `trades`, ...): the report's tests read them by that class."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            item = cell if isinstance(cell, Cell) else Cell(cell)
            attr = f' class="{item.cls}"' if item.cls else ""
            cells.append(f"<td{attr}>{html.escape(item.text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="{kind}">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def facts(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table of labelled values."""
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'


# ----------------------------------------------------------------------------------------- charts


def _downsample(count: int) -> npt.NDArray[np.int64]:
    """Indices of at most MAX_POINTS points, always including the first and the last."""
    if count <= MAX_POINTS:
        return np.arange(count, dtype=np.int64)
    return np.unique(np.linspace(0, count - 1, MAX_POINTS).astype(np.int64))


class _Frame:
    """Maps times and values into the plot area and draws its labelled axes."""

    def __init__(self, t0: float, t1: float, low: float, high: float) -> None:
        if high <= low:
            pad = abs(low) * 0.01 or 1.0
            low, high = low - pad, high + pad
        self.t0, self.t1 = t0, t1 if t1 > t0 else t0 + 1.0
        self.low, self.high = low, high

    def x(self, t: Any) -> Any:
        return LEFT + (t - self.t0) / (self.t1 - self.t0) * (WIDTH - LEFT - RIGHT)

    def y(self, v: Any) -> Any:
        return HEIGHT - BOTTOM - (v - self.low) / (self.high - self.low) * (HEIGHT - TOP - BOTTOM)

    def axes(self, fmt: Any) -> str:
        parts = [
            f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" class="plot"/>'
        ]
        for value in np.linspace(self.low, self.high, 3):
            y = float(self.y(value))
            parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
            parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{fmt(value)}</text>')
        step = next((s for s in _TICK_STEPS_MS if (self.t1 - self.t0) / s <= MAX_TIME_TICKS), _TICK_STEPS_MS[-1])
        label = "%Y-%m-%d" if step >= DAY_MS else "%m-%d %H:%M"
        for t in np.arange(-(-self.t0 // step) * step, self.t1 + 1, step):
            x = float(self.x(t))
            text = datetime.fromtimestamp(float(t) / 1000, UTC).strftime(label)
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" class="grid"/>')
            # Labels at the edges align inwards so they are not cut off.
            anchor = "start" if x < LEFT + 40 else "end" if x > WIDTH - RIGHT - 40 else "middle"
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" class="axis" text-anchor="{anchor}">{text}</text>')
        return "".join(parts)


def _polyline(frame: _Frame, time_ms: npt.NDArray[np.int64], values: npt.NDArray[np.float64], cls: str) -> str:
    index = _downsample(len(time_ms))
    xs, ys = frame.x(time_ms[index].astype(np.float64)), frame.y(values[index])
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True) if np.isfinite(y))
    return f'<polyline points="{points}" class="{cls}"/>'


def _limits(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)


def _svg(title: str, body: str, note: str = "") -> str:
    label = html.escape(title)
    text = f'<text x="{LEFT}" y="16" class="title">{label}</text>'
    if note:
        text += f'<text x="{WIDTH - RIGHT}" y="16" class="axis" text-anchor="end">{html.escape(note)}</text>'
    return f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">{text}{body}</svg>'


def _trades(count: int) -> str:
    return "1 trade" if count == 1 else f"{count} trades"


def price_chart(
    title: str, time_ms: npt.NDArray[np.int64], price: npt.NDArray[np.float64], trades: Sequence[TradeSpan] = ()
) -> str:
    """Closing prices with the trades: up to MAX_MARKED_TRADES as entry/exit marks with their prices on hover,
    more as shaded spans while a position is held (green when the trade won, red when it lost)."""
    if len(time_ms) == 0:
        return f'<p class="empty">{html.escape(title)}: no data</p>'
    low, high = _limits(price)
    frame = _Frame(float(time_ms[0]), float(time_ms[-1]), low, high)
    parts = [frame.axes(fmt_price)]
    note = ""
    if len(trades) > MAX_MARKED_TRADES:
        note = f"{_trades(len(trades))}: shaded while in a position, green a win, red a loss"
        for trade in trades:
            x0, x1 = float(frame.x(trade.entry_ms)), float(frame.x(trade.exit_ms))
            cls = "win" if trade.pnl > 0 else "loss"
            parts.append(
                f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 0.8):.1f}" height="{HEIGHT - TOP - BOTTOM}" '
                f'class="{cls}"/>'
            )
    parts.append(_polyline(frame, time_ms, price, "price"))
    if 0 < len(trades) <= MAX_MARKED_TRADES:
        note = f"{_trades(len(trades))}: ▲ entry, ▼ exit"
        for trade in trades:
            for side, t, p in (("buy", trade.entry_ms, trade.entry_price), ("sell", trade.exit_ms, trade.exit_price)):
                x, y = float(frame.x(t)), float(frame.y(p))
                path = (
                    f"M{x:.1f},{y + 2:.1f} l-5,8 l10,0 z" if side == "buy" else f"M{x:.1f},{y - 2:.1f} l-5,-8 l10,0 z"
                )
                verb = "entry" if side == "buy" else "exit"
                parts.append(
                    f'<path class="{side}" d="{path}"><title>{verb} {fmt_price(p)} at {fmt_time(t)}</title></path>'
                )
    return _svg(title, "".join(parts), note)


def value_chart(
    title: str,
    time_ms: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    *,
    cls: str,
    fmt: Any = fmt_money,
    fill_to_zero: bool = False,
) -> str:
    """A line over time (equity, drawdown), every point drawn up to the last one."""
    if len(time_ms) == 0:
        return f'<p class="empty">{html.escape(title)}: no data</p>'
    low, high = _limits(values)
    if fill_to_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    frame = _Frame(float(time_ms[0]), float(time_ms[-1]), low, high)
    parts = [frame.axes(fmt)]
    if fill_to_zero:
        index = _downsample(len(time_ms))
        xs, ys = frame.x(time_ms[index].astype(np.float64)), frame.y(values[index])
        zero = float(frame.y(0.0))
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
        parts.append(f'<polygon points="{xs[0]:.1f},{zero:.1f} {points} {xs[-1]:.1f},{zero:.1f}" class="{cls}-fill"/>')
    parts.append(_polyline(frame, time_ms, values, cls))
    last = f"last {fmt(float(values[-1]))} at {fmt_time(int(time_ms[-1]))}"
    return _svg(title, "".join(parts), last)


def drawdown_pct_series(equity: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Percent below the running peak (0 or negative)."""
    if equity.size == 0:
        return equity
    peak = np.maximum.accumulate(equity)
    result: npt.NDArray[np.float64] = np.where(peak > 0, (equity - peak) / peak * 100, 0.0)
    return result


def equity_charts(title: str, time_ms: npt.NDArray[np.int64], equity: npt.NDArray[np.float64], currency: str) -> str:
    """Equity and its drawdown from the peak, one above the other."""
    return value_chart(
        f"{title}: equity ({currency})", time_ms, equity, cls="equity", fmt=lambda v: fmt_money(float(v))
    ) + value_chart(
        f"{title}: drawdown from the peak (%)",
        time_ms,
        drawdown_pct_series(equity),
        cls="drawdown",
        fmt=lambda v: fmt_pct(float(v), signed=False),
        fill_to_zero=True,
    )


# ----------------------------------------------------------------------------------------- page

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1040px;padding:0 1em;color:#1f2328}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}h3{margin-top:1.2em}
svg{width:100%;height:auto;margin:.3em 0;background:#fff}
.plot{fill:#fff;stroke:#d0d7de}.grid{stroke:#eaeef2}.title{font-size:13px;font-weight:600}
.axis{font-size:11px;fill:#57606a}
.price{fill:none;stroke:#24292f;stroke-width:1.1}.equity{fill:none;stroke:#1a7f37;stroke-width:1.4}
.drawdown{fill:none;stroke:#cf222e;stroke-width:1.1}.drawdown-fill{fill:#cf222e;opacity:.18}
.buy{fill:#1a7f37}.sell{fill:#cf222e}.win{fill:#1a7f37;opacity:.16}.loss{fill:#cf222e;opacity:.16}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}caption{text-align:left;color:#57606a;padding:.2em 0}
th,td{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
td{white-space:nowrap}td:last-child{white-space:normal}
thead th{background:#f6f8fa;font-weight:600}.facts th{font-weight:500;color:#57606a}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.pass{color:#1a7f37;font-weight:600}
td.fail{color:#cf222e;font-weight:600}
.outcome{font-size:1.05em;padding:.6em .8em;border-radius:6px}.ok{background:#dafbe1}.bad{background:#ffebe9}
.running{background:#ddf4ff}.note{color:#57606a}details summary{cursor:pointer;color:#0969da;margin:.4em 0}
"""


def render_page(title: str, outcome_html: str, body: Sequence[str], *, refresh: bool) -> str:
    """The whole page; `refresh` makes a browser reload it every REFRESH_SECONDS (while the run is unfinished)."""
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{meta}<title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{outcome_html}{''.join(body)}</body></html>"
    )

"""`report.html`: the equity curve, the drawdown and the trades on the price chart, as inline SVG.

One self-contained file (no scripts, no network): it opens anywhere, also from a CI artifact.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

WIDTH, HEIGHT, PAD = 960, 220, 44
MAX_POINTS = 1500


@dataclass(frozen=True)
class TradeMark:
    time_ms: int
    price: float
    side: str  # "buy" or "sell"


@dataclass(frozen=True)
class ChartSeries:
    """One section of the report: a price series with trade marks and the equity it produced."""

    title: str
    time_ms: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    equity: npt.NDArray[np.float64]
    trades: Sequence[TradeMark] = field(default_factory=tuple)


def _downsample(count: int) -> npt.NDArray[np.int64]:
    if count <= MAX_POINTS:
        return np.arange(count, dtype=np.int64)
    return np.unique(np.linspace(0, count - 1, MAX_POINTS).astype(np.int64))


def _scale(values: npt.NDArray[np.float64], low: float, high: float, out_low: float, out_high: float) -> Any:
    span = high - low if high > low else 1.0
    return out_low + (values - low) / span * (out_high - out_low)


def _fmt_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def line_chart(
    title: str,
    time_ms: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    *,
    color: str,
    marks: Sequence[TradeMark] = (),
    fill: bool = False,
) -> str:
    """An SVG line chart with min/max labels, the time range and optional buy/sell marks."""
    if len(time_ms) == 0:
        return f'<p class="empty">{html.escape(title)}: no data</p>'
    index = _downsample(len(time_ms))
    t, v = time_ms[index].astype(np.float64), values[index]
    t0, t1 = float(time_ms[0]), float(time_ms[-1])
    finite = v[np.isfinite(v)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    xs = _scale(t, t0, t1, PAD, WIDTH - PAD / 2)
    ys = _scale(v, low, high, HEIGHT - PAD / 2, PAD / 2)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True) if np.isfinite(y))
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{PAD}" y="14" class="title">{html.escape(title)}</text>',
        f'<text x="4" y="{PAD / 2 + 4}" class="axis">{high:,.2f}</text>',
        f'<text x="4" y="{HEIGHT - PAD / 2}" class="axis">{low:,.2f}</text>',
        f'<text x="{PAD}" y="{HEIGHT - 4}" class="axis">{_fmt_time(int(t0))}</text>',
        f'<text x="{WIDTH - PAD / 2}" y="{HEIGHT - 4}" class="axis" text-anchor="end">{_fmt_time(int(t1))}</text>',
    ]
    if fill:
        base = HEIGHT - PAD / 2 if low < 0 <= high else PAD / 2
        parts.append(
            f'<polygon points="{xs[0]:.1f},{base:.1f} {points} {xs[-1]:.1f},{base:.1f}" fill="{color}" opacity="0.25"/>'
        )
    parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.2"/>')
    for mark in marks:
        x = float(_scale(np.array([float(mark.time_ms)]), t0, t1, PAD, WIDTH - PAD / 2)[0])
        y = float(_scale(np.array([mark.price]), low, high, HEIGHT - PAD / 2, PAD / 2)[0])
        shape = "buy" if mark.side == "buy" else "sell"
        dy = 7 if shape == "buy" else -7
        parts.append(
            f'<path class="{shape}" d="M{x:.1f},{y:.1f} l-5,{dy} l10,0 z">'
            f"<title>{shape} {mark.price:,.4f} at {_fmt_time(mark.time_ms)}</title></path>"
        )
    parts.append("</svg>")
    return "".join(parts)


def drawdown_pct_series(equity: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if equity.size == 0:
        return equity
    peak = np.maximum.accumulate(equity)
    result: npt.NDArray[np.float64] = np.where(peak > 0, (equity - peak) / peak * 100, 0.0)
    return result


def _section(series: ChartSeries) -> str:
    return "".join(
        [
            f"<h2>{html.escape(series.title)}</h2>",
            line_chart("Price and trades", series.time_ms, series.price, color="#345", marks=series.trades),
            line_chart("Equity", series.time_ms, series.equity, color="#1a7f37"),
            line_chart("Drawdown %", series.time_ms, drawdown_pct_series(series.equity), color="#cf222e", fill=True),
        ]
    )


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt_value(v))}</td></tr>" for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    return "" if value is None else str(value)


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
svg{width:100%;height:auto;border:1px solid #ddd;margin:.4em 0;background:#fff}
.title{font-size:13px;font-weight:600}.axis{font-size:11px;fill:#666}
.buy{fill:#1a7f37}.sell{fill:#cf222e}table{border-collapse:collapse}
th,td{padding:2px 10px;border-bottom:1px solid #eee;text-align:left}th{font-weight:500;color:#555}
.outcome{font-size:1.1em;padding:.5em;border-radius:4px}.ok{background:#dafbe1}.bad{background:#ffebe9}
"""


def render_report(
    run_name: str, outcome: str, message: str, summary: dict[str, Any], sections: list[ChartSeries]
) -> str:
    ok = outcome == "Succeeded"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(run_name)}: {html.escape(outcome)}</title><style>{STYLE}</style></head><body>"
        f"<h1>TradingRun {html.escape(run_name)}</h1>"
        f"<p class='outcome {'ok' if ok else 'bad'}'><b>{html.escape(outcome)}</b> {html.escape(message)}</p>"
        f"<h2>Summary</h2>{_table(summary)}" + "".join(_section(s) for s in sections) + "</body></html>"
    )

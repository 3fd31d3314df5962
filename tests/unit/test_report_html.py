"""report.html: self-contained charts of price with trades, equity and drawdown."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np

from traiding.pipeline.report_html import ChartSeries, TradeMark, drawdown_pct_series, line_chart, render_report


class _Counter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.classes: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for key, value in attrs:
            if key == "class" and value:
                self.classes[value] = self.classes.get(value, 0) + 1


def test_drawdown_series_is_percent_below_the_running_peak() -> None:
    equity = np.array([100.0, 110.0, 99.0, 121.0, 60.5])
    assert np.allclose(drawdown_pct_series(equity), [0.0, 0.0, -10.0, 0.0, -50.0])


def test_report_has_three_charts_per_section_and_every_trade_marked() -> None:
    n = 5000
    time = np.arange(n, dtype=np.int64) * 300_000 + 1_600_000_000_000
    price = 100 + np.sin(np.arange(n) / 50.0)
    equity = 10_000 + np.cumsum(np.random.default_rng(1).normal(0, 1, n))
    trades = [TradeMark(int(time[10]), float(price[10]), "buy"), TradeMark(int(time[90]), float(price[90]), "sell")]
    page = render_report(
        "btc <sma>",
        "Succeeded",
        "done",
        {"roi_pct": 1.5, "trades": 1},
        [ChartSeries("BTC/USDT", time, price, equity, trades)],
    )
    parser = _Counter()
    parser.feed(page)
    assert parser.tags["svg"] == 3
    assert parser.classes["buy"] == 1 and parser.classes["sell"] == 1
    assert "btc &lt;sma&gt;" in page and "<sma>" not in page
    assert "<script" not in page  # self-contained and inert
    # Long series are thinned so the file stays small.
    biggest = max(len(m.split()) for m in re.findall(r'<polyline points="([^"]+)"', page))
    assert biggest <= 1500


def test_an_empty_series_says_so_instead_of_drawing() -> None:
    empty = np.array([], dtype=np.int64)
    assert "no data" in line_chart("Equity", empty, np.array([], dtype=np.float64), color="#000")


def test_failed_runs_are_marked_as_such() -> None:
    page = render_report("r", "Failed", "sharpe below 0.5", {}, [])
    assert "class='outcome bad'" in page and "sharpe below 0.5" in page

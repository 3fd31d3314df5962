"""report.html's building blocks (charts, tables) and its live rewriting while a run goes on."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import yaml

from traiding.domain.candles import CandleCache
from traiding.manifest import parse_manifest
from traiding.pipeline.price_series import PriceSeries
from traiding.pipeline.report_files import LiveReport
from traiding.pipeline.report_html import (
    MAX_MARKED_TRADES,
    MAX_POINTS,
    Cell,
    TradeSpan,
    drawdown_pct_series,
    price_chart,
    render_page,
    table,
    value_chart,
)
from traiding.resource import TradingRunStatus

REPO = Path(__file__).resolve().parents[2]
T0 = 1_600_000_000_000
FIVE_MIN = 300_000


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


def count(page: str) -> _Counter:
    parser = _Counter()
    parser.feed(page)
    return parser


def series(n: int) -> tuple[np.ndarray, np.ndarray]:
    time = T0 + FIVE_MIN * np.arange(n, dtype=np.int64)
    return time, 100 + np.sin(np.arange(n) / 50.0)


def spans(time: np.ndarray, price: np.ndarray, count: int) -> list[TradeSpan]:
    starts = np.linspace(0, len(time) - 20, count).astype(int)
    return [
        TradeSpan(int(time[i]), int(time[i + 10]), float(price[i]), float(price[i + 10]), 1.0 if k % 2 else -1.0)
        for k, i in enumerate(starts)
    ]


def test_drawdown_series_is_percent_below_the_running_peak() -> None:
    equity = np.array([100.0, 110.0, 99.0, 121.0, 60.5])
    assert np.allclose(drawdown_pct_series(equity), [0.0, 0.0, -10.0, 0.0, -50.0])


def test_a_few_trades_are_marked_at_their_prices_with_the_price_on_hover() -> None:
    time, price = series(500)
    page = price_chart("ETH/USDT", time, price, spans(time, price, 3))
    parsed = count(page)
    assert parsed.classes["buy"] == 3 and parsed.classes["sell"] == 3
    assert "win" not in parsed.classes
    assert "3 trades: ▲ entry, ▼ exit" in page
    assert page.count("<title>entry ") == 3


def test_hundreds_of_trades_become_shaded_spans_so_the_price_stays_readable() -> None:
    time, price = series(20_000)
    page = price_chart("BTC/USDT", time, price, spans(time, price, 400))
    parsed = count(page)
    assert "buy" not in parsed.classes  # no triangles: 800 of them would hide the line
    assert parsed.classes["win"] + parsed.classes["loss"] == 400
    assert parsed.classes["win"] == parsed.classes["loss"] == 200  # coloured by the trade's outcome
    assert MAX_MARKED_TRADES < 400 and "400 trades: shaded while in a position" in page
    # Long series are thinned so the file stays small.
    points = re.search(r'<polyline points="([^"]+)" class="price"/>', page)
    assert points is not None and len(points.group(1).split()) <= MAX_POINTS


def test_a_curve_is_drawn_to_its_last_point_and_labels_it() -> None:
    time, _ = series(5000)
    equity = np.linspace(10_000, 12_345.67, 5000)
    page = value_chart("Equity", time, equity, cls="equity")
    points = re.search(r'<polyline points="([^"]+)" class="equity"/>', page)
    assert points is not None
    last_x = float(points.group(1).split()[-1].split(",")[0])
    assert last_x == max(float(p.split(",")[0]) for p in points.group(1).split())  # the last point is drawn
    assert "last 12,345.67 at 2020-09-30 21:01" in page
    assert "12,345.67" in page and "10,000.00" in page  # value axis labels, readable precision


def test_empty_series_say_so_instead_of_drawing() -> None:
    empty = np.array([], dtype=np.int64)
    assert "no data" in value_chart("Equity", empty, np.array([], dtype=np.float64), cls="equity")
    assert "no data" in price_chart("ETH/USDT", empty, np.array([], dtype=np.float64))


def test_tables_escape_their_text_and_carry_their_kind() -> None:
    page = table("gates", ["gate", "result"], [["<minSharpe>", Cell("fail", "fail")]])
    assert '<table class="gates">' in page and "&lt;minSharpe&gt;" in page and '<td class="fail">fail</td>' in page


def test_only_an_unfinished_run_reloads_itself_and_nothing_runs_scripts() -> None:
    live = render_page("r", "<h1>r</h1>", [], refresh=True)
    final = render_page("r", "<h1>r</h1>", [], refresh=False)
    assert '<meta http-equiv="refresh" content="5">' in live
    assert "http-equiv" not in final
    assert "<script" not in live + final


def test_the_live_report_is_written_at_once_at_each_phase_change_and_at_most_every_interval(tmp_path: Path) -> None:
    run = parse_manifest(yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text()))
    now = [0.0]
    report = LiveReport(
        tmp_path, run, CandleCache(tmp_path / "cache"), PriceSeries(), interval_s=2.0, clock=lambda: now[0]
    )
    path = tmp_path / "report.html"

    def written(status: TradingRunStatus) -> str | None:
        path.unlink(missing_ok=True)
        report.update(status)
        return path.read_text() if path.exists() else None

    pending = written(TradingRunStatus(phase="Pending"))
    assert pending is not None and 'http-equiv="refresh"' in pending and "In progress: Pending" in pending
    now[0] = 1.0
    assert written(TradingRunStatus(phase="Pending")) is None  # same phase, within the interval
    assert written(TradingRunStatus(phase="DataCheck")) is not None  # a phase change: at once
    now[0] = 3.5
    assert written(TradingRunStatus(phase="DataCheck")) is not None  # the interval passed
    final = written(TradingRunStatus(phase="Succeeded", message="run finished"))
    assert final is not None and "http-equiv" not in final and "Succeeded" in final

"""The fill model the simulator and the paper broker share: books from candles, fills across levels, resting fills."""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import pytest

from traiding.domain.candles import Candles
from traiding.domain.orderbook import Book, BookModel, Level, Reference, execute, resting_fill, take
from traiding.domain.pricepath import PricePath

D = Decimal
STEP = D("0.001")
BOOK = Book(
    bids=(Level(D("99"), D("1")), Level(D("98"), D("2")), Level(D("97"), D("3"))),
    asks=(Level(D("101"), D("1")), Level(D("102"), D("2")), Level(D("103"), D("3"))),
)


def test_a_market_order_takes_level_after_level_at_each_price() -> None:
    done = execute(BOOK, "BUY", qty=D("2.5"), step=STEP)
    assert done.status == "FILLED"
    assert [(f.price, f.qty) for f in done.fills] == [(D("101"), D("1")), (D("102"), D("1.5"))]
    assert done.average == (D("101") + D("102") * D("1.5")) / D("2.5")


def test_a_market_order_beyond_the_book_expires_with_what_it_got() -> None:
    done = execute(BOOK, "SELL", qty=D("10"), step=STEP)
    assert (done.status, done.qty, done.quote) == ("EXPIRED", D("6"), D("99") + D("196") + D("291"))


def test_a_buy_by_quote_amount_spends_it_level_by_level_on_the_lot_step() -> None:
    done = execute(BOOK, "BUY", quote=D("200"), step=STEP)
    assert done.status == "FILLED"
    assert [(f.price, f.qty) for f in done.fills] == [(D("101"), D("1")), (D("102"), D("0.970"))]
    assert done.quote <= D("200")
    assert execute(BOOK, "BUY", quote=D("10000"), step=STEP).status == "EXPIRED"  # more money than the book holds


@pytest.mark.parametrize(
    ("time_in_force", "status", "filled"),
    [("GTC", "PARTIALLY_FILLED", D("3")), ("IOC", "EXPIRED", D("3")), ("FOK", "EXPIRED", D("0"))],
)
def test_a_limit_takes_what_its_price_crosses_then_rests_expires_or_takes_nothing(
    time_in_force: str, status: str, filled: Decimal
) -> None:
    done = execute(BOOK, "BUY", qty=D("4"), limit=D("102"), time_in_force=time_in_force, step=STEP)  # type: ignore[arg-type]
    assert (done.status, done.qty) == (status, filled)


def test_a_limit_the_book_can_fill_fills_and_one_that_crosses_nothing_is_new() -> None:
    assert execute(BOOK, "SELL", qty=D("3"), limit=D("98"), time_in_force="FOK", step=STEP).status == "FILLED"
    assert execute(BOOK, "SELL", qty=D("1"), limit=D("100"), step=STEP).status == "NEW"
    assert take(BOOK.asks, "BUY", qty=D("5"), limit=D("100.99"), step=STEP) == []


def test_a_book_from_a_client_librarys_floats_is_exact() -> None:
    book = Book.of_floats([[2345.67, 0.1], [2345.66, 0.0]], [[2345.68, 12.3456]])
    assert book.bids == (Level(D("2345.67"), D("0.1")),)  # an empty level is no level
    assert book.asks == (Level(D("2345.68"), D("12.3456")),)


REFERENCE = Reference(open=30_000.0, high=30_100.0, low=29_900.0, close=30_050.0, volume=400.0)


def model_book(model: BookModel, symbol: str = "BTC/USDT", reference: Reference = REFERENCE, depth: int = 50) -> Book:
    return model.book(symbol, 30_000.0, reference, tick=D("0.01"), step=D("0.00001"), depth=depth)


def test_a_modelled_book_is_on_the_grid_ordered_and_thicker_away_from_the_touch() -> None:
    book = model_book(BookModel())
    bids, asks = list(book.bids), list(book.asks)
    assert len(bids) == len(asks) == 50
    assert all(level.price % D("0.01") == 0 and level.qty % D("0.00001") == 0 for level in bids + asks)
    assert all(a.price > b.price for a, b in itertools.pairwise(bids))
    assert all(a.price < b.price for a, b in itertools.pairwise(asks))
    assert sum(level.qty for level in asks[40:]) > sum(level.qty for level in asks[:10])
    # 2 bps in a calm market plus 0.05 of the previous candle's 66.7 bps range
    spread = (asks[0].price - bids[0].price) / D(30_000) * 10_000
    assert float(spread) == pytest.approx(2 + 0.05 * 200 / 30_000 * 10_000, abs=0.05)
    # about half a percent of the previous candle's volume at each level near the touch
    assert float(sum(level.qty for level in asks[:5]) / 5) == pytest.approx(400 * 0.005 * 1.2, rel=0.5)


def test_a_modelled_book_is_the_same_for_the_same_candle_and_market_however_it_is_named() -> None:
    model = BookModel(seed=3)
    assert list(model_book(model).asks) == list(model_book(model, "BTCUSDT").asks)
    assert list(model_book(model).asks) != list(model_book(BookModel(seed=4)).asks)
    other = Reference(open=30_000.0, high=30_100.0, low=29_900.0, close=30_050.0, volume=401.0)
    assert [lv.qty for lv in model_book(model).asks] != [lv.qty for lv in model_book(model, reference=other).asks]


def test_a_quiet_market_still_shows_the_minimum_depth() -> None:
    empty = Reference(open=30_000.0, high=30_000.0, low=30_000.0, close=30_000.0, volume=0.0)
    book = model_book(BookModel(min_level_notional=1_000.0), reference=empty)
    assert all(level.qty * level.price >= D(500) for level in book.asks)  # at least half the minimum, seeded


def test_a_resting_order_gets_the_volume_that_traded_through_its_price() -> None:
    assert resting_fill(D("2"), 0.73456, STEP) == D("0.734")
    assert resting_fill(D("2"), 5.0, STEP) == D("2")
    assert resting_fill(D("2"), 0.0, STEP) == D("0")


def path() -> PricePath:
    rows = np.array(
        [
            (0, 100.0, 110.0, 95.0, 105.0, 30.0),  # rising: 100 -> 95 -> 110 -> 105
            (3_000, 105.0, 106.0, 90.0, 92.0, 60.0),  # falling: 105 -> 106 -> 90 -> 92
            (9_000, 93.0, 94.0, 92.0, 93.0, 3.0),  # after a gap of one candle
        ]
    )
    candles = Candles(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5])
    return PricePath(candles, 3_000)


def test_crossings_say_when_each_candle_reached_a_price_and_what_traded_beyond_it() -> None:
    first, second = path().crossings(0, 8_999, 97.5, falling=True)
    # 100 -> 95 in the first second: at 97.5 half-way; below it until 97.5 again half-way up to 110 (1/6 s)
    assert first.time == 500 and first.candle_end == 3_000
    assert first.volume == pytest.approx(30.0 * (500 + 2.5 / 15 * 1_000) / 3_000)
    # 106 -> 90 in its second second: reaches 97.5 at 8.5/16 of it, then stays below to the end
    assert second.time == 3_000 + 1_000 + 532  # rounded up to the millisecond
    assert second.volume == pytest.approx(60.0 * (1_000 - 8.5 / 16 * 1_000 + 1_000) / 3_000, rel=1e-6)
    assert path().crossings(0, 9_000, 111.0, falling=False) == []


def test_a_window_that_starts_in_a_gap_beyond_the_price_crosses_at_once() -> None:
    assert path().first_crossing(7_000, 12_000, 95.0, falling=True) == 7_000  # the last close, 92, is below
    assert path().first_crossing(7_000, 12_000, 91.0, falling=True) is None


def test_the_volume_weighted_price_is_the_mean_of_the_path_weighted_by_volume() -> None:
    volume, average = path().volume_weighted_price(0, 6_000)
    first, second = (100 + 95 + 95 + 110 + 110 + 105) / 6, (105 + 106 + 106 + 90 + 90 + 92) / 6
    assert volume == pytest.approx(90.0)
    assert average == pytest.approx((30 * first + 60 * second) / 90)
    assert path().volume_weighted_price(6_500, 8_000) == (0.0, 92.0)  # nothing traded in the gap

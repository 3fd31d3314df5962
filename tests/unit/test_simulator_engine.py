"""Orders against the replayed book: filters, balances, fees, fills across levels, partial fills, resting orders
filled where the path crossed them, stops, cancel, duplicates.

Most tests trade a deep market (10000 BTC a candle: about 50 BTC at each level), so small orders fill at the touch;
the tests of depth trade a shallow one (1 BTC a candle: each level holds the minimum, about 1000 USDT).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from traiding.domain.candles import Candles
from traiding.domain.orderbook import to_grid
from traiding_simulator.config import SimulatorConfig
from traiding_simulator.engine import Exchange
from traiding_simulator.errors import BinanceError
from traiding_simulator.market import MINUTE_MS, Market, Series, SymbolMarket

T0 = 1_700_000_000_000 - 1_700_000_000_000 % (5 * MINUTE_MS)
FIVE = 5 * MINUTE_MS


DEEP, SHALLOW = 10_000.0, 1.0  # BTC traded per candle


def market(volume: float = DEEP) -> Market:
    # flat at 30000 for two candles, then a dip to 29000 and back
    rows = np.array(
        [
            (T0, 30000.0, 30000.0, 30000.0, 30000.0, volume),
            (T0 + FIVE, 30000.0, 30000.0, 30000.0, 30000.0, volume),
            (T0 + 2 * FIVE, 30000.0, 30100.0, 29000.0, 29500.0, volume),
        ]
    )
    candles = Candles(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5])
    return Market([SymbolMarket("BTC/USDT", [Series(FIVE, candles)])])


def exchange(volume: float = DEEP, **overrides: object) -> Exchange:
    config = SimulatorConfig.model_validate(
        {"initial_balances": {"USDT": "10000", "BTC": "1"}, "spread_bps": 2.0, **overrides}
    )
    return Exchange(config, market(volume))


def order(**params: str) -> dict[str, str]:
    return {"symbol": "BTCUSDT", **params}


def balances(ex: Exchange) -> dict[str, tuple[Decimal, Decimal]]:
    return {a: (b.free, b.locked) for a, b in ex.account("main").balances.items()}


def test_book_is_the_replay_price_plus_minus_half_the_spread_on_the_tick_grid() -> None:
    ex = exchange()
    bid, ask = (level.price for level in ex.touch(ex.market.by_id["BTCUSDT"], T0))
    assert (bid, ask) == (Decimal("29997.00"), Decimal("30003.00"))


def test_market_buy_fills_at_the_ask_and_pays_commission_in_base() -> None:
    ex = exchange()
    placed = ex.place("main", order(side="BUY", type="MARKET", quantity="0.1"), T0)
    assert placed.status == "FILLED"
    assert placed.fills[0].price == Decimal("30003.00")
    assert placed.fills[0].commission == Decimal("0.0001") and placed.fills[0].commission_asset == "BTC"
    assert balances(ex)["USDT"] == (Decimal("10000") - Decimal("3000.3"), Decimal(0))
    assert balances(ex)["BTC"] == (Decimal("1.0999"), Decimal(0))
    (trade,) = ex.trades["main"]
    assert trade.is_buyer and not trade.is_maker and trade.quote_qty == Decimal("3000.3")


def test_market_sell_pays_commission_in_quote() -> None:
    ex = exchange()
    placed = ex.place("main", order(side="SELL", type="MARKET", quantity="0.1"), T0)
    assert placed.fills[0].price == Decimal("29997.00")
    assert placed.fills[0].commission == Decimal("2.9997") and placed.fills[0].commission_asset == "USDT"
    assert balances(ex)["USDT"][0] == Decimal("10000") + Decimal("2999.7") - Decimal("2.9997")
    assert balances(ex)["BTC"][0] == Decimal("0.9")


def test_market_buy_by_quote_order_qty_rounds_the_quantity_down_to_the_step() -> None:
    ex = exchange()
    placed = ex.place("main", order(side="BUY", type="MARKET", quoteOrderQty="100"), T0)
    assert placed.orig_qty == Decimal("0.00333")  # 100 / 30003 = 0.003333.. -> step 0.00001
    assert placed.cumm_quote_qty <= Decimal("100")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.000001", price="30000"), "LOT_SIZE"),
        (order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.000015", price="30000"), "LOT_SIZE"),
        (order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="30000.001"), "PRICE_FILTER"),
        (order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.0001", price="30000"), "NOTIONAL"),
        (order(side="BUY", type="MARKET", quantity="0.0001"), "NOTIONAL"),
        (order(side="BUY", type="MARKET", quantity="1000"), "MARKET_LOT_SIZE"),
    ],
)
def test_filters_reject_with_minus_1013(params: dict[str, str], message: str) -> None:
    ex = exchange()
    with pytest.raises(BinanceError) as err:
        ex.place("main", params, T0)
    assert (err.value.code, err.value.msg) == (-1013, f"Filter failure: {message}")
    assert ex.orders == {}


def test_insufficient_balance_is_minus_2010_and_changes_nothing() -> None:
    ex = exchange()
    before = balances(ex)
    with pytest.raises(BinanceError) as err:
        ex.place("main", order(side="BUY", type="MARKET", quantity="0.5"), T0)
    assert (err.value.code, err.value.msg) == (-2010, "Account has insufficient balance for requested action.")
    with pytest.raises(BinanceError):
        ex.place("main", order(side="SELL", type="LIMIT", timeInForce="GTC", quantity="2", price="40000"), T0)
    assert balances(ex) == before


def test_a_resting_limit_locks_funds_and_fills_when_the_path_reaches_it() -> None:
    ex = exchange()
    placed = ex.place("main", order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="29200"), T0)
    assert placed.status == "NEW"
    assert balances(ex)["USDT"] == (Decimal("7080.0"), Decimal("2920.0"))
    ex.match(T0 + FIVE)  # still flat at 30000
    assert placed.status == "NEW"
    ex.match(T0 + 2 * FIVE + FIVE // 2)  # a falling candle: its high first, halfway it is at 29550
    assert placed.status == "NEW"
    ex.match(T0 + 2 * FIVE + 4 * FIVE // 5)  # it passed its low (29000) two thirds in
    assert placed.status == "FILLED"
    assert placed.fills[0].price == Decimal("29200")
    assert ex.trades["main"][0].is_maker
    # stamped when the path reached 29200 on its way from the high (30100, a third in) to the low (two thirds in),
    # not when the match ran
    third = FIVE // 3
    crossed = T0 + 2 * FIVE + third + -(-(30100 - 29200) * third // 1100)
    assert ex.trades["main"][0].time == placed.update_time == crossed
    assert balances(ex)["USDT"] == (Decimal("7080.0"), Decimal("0"))
    assert balances(ex)["BTC"][0] == Decimal("1.0999")


def test_a_crossing_limit_fills_at_once_as_taker_at_the_better_price() -> None:
    ex = exchange()
    placed = ex.place("main", order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.1", price="31000"), T0)
    assert placed.status == "FILLED" and placed.fills[0].price == Decimal("30003.00")
    assert balances(ex)["USDT"] == (Decimal("10000") - Decimal("3000.3"), Decimal(0))


def test_ioc_that_does_not_cross_expires_and_limit_maker_that_would_cross_is_rejected() -> None:
    ex = exchange()
    expired = ex.place("main", order(side="BUY", type="LIMIT", timeInForce="IOC", quantity="0.1", price="29000"), T0)
    assert expired.status == "EXPIRED" and balances(ex)["USDT"] == (Decimal("10000"), Decimal(0))
    with pytest.raises(BinanceError) as err:
        ex.place("main", order(side="BUY", type="LIMIT_MAKER", quantity="0.1", price="31000"), T0)
    assert err.value.msg == "Order would immediately match and take."


def test_cancel_releases_funds_and_unknown_orders_are_reported_like_binance() -> None:
    ex = exchange()
    placed = ex.place("main", order(side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.5", price="40000"), T0)
    assert balances(ex)["BTC"] == (Decimal("0.5"), Decimal("0.5"))
    canceled = ex.cancel("main", order(orderId=str(placed.order_id)), T0 + 1)
    assert canceled.status == "CANCELED" and balances(ex)["BTC"] == (Decimal("1"), Decimal("0"))
    with pytest.raises(BinanceError) as err:
        ex.cancel("main", order(orderId=str(placed.order_id)), T0 + 2)
    assert err.value.code == -2011
    with pytest.raises(BinanceError) as err:
        ex.cancel("main", order(orderId="999"), T0 + 2)
    assert err.value.code == -2011
    with pytest.raises(BinanceError) as err:
        ex.find("main", order(orderId="999"))
    assert err.value.code == -2013
    with pytest.raises(BinanceError) as err:
        ex.find("other-account", order(orderId=str(placed.order_id)))
    assert err.value.code == -2013


def test_orders_are_found_by_client_order_id() -> None:
    ex = exchange()
    placed = ex.place("main", order(side="BUY", type="MARKET", quantity="0.01", newClientOrderId="run-1-0"), T0)
    assert ex.find("main", order(origClientOrderId="run-1-0")) is placed


def test_the_strict_mode_rejects_any_reused_client_order_id_and_counts_the_attempts() -> None:
    ex = exchange(duplicate_client_order_id="any")
    ex.place("main", order(side="BUY", type="MARKET", quantity="0.01", newClientOrderId="cid"), T0)
    with pytest.raises(BinanceError) as err:
        ex.place("main", order(side="BUY", type="MARKET", quantity="0.01", newClientOrderId="cid"), T0)
    assert (err.value.code, err.value.msg) == (-2010, "Duplicate order sent.")
    assert ex.orders_by_client_id["cid"] == 1 and ex.order_attempts_by_client_id["cid"] == 2
    assert len(ex.orders) == 1


def test_by_default_as_on_binance_the_id_of_a_filled_order_may_be_reused_but_not_an_open_one() -> None:
    ex = exchange()
    ex.place("main", order(side="BUY", type="MARKET", quantity="0.01", newClientOrderId="filled"), T0)
    ex.place("main", order(side="BUY", type="MARKET", quantity="0.01", newClientOrderId="filled"), T0)
    ex.place(
        "main",
        order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="20000", newClientOrderId="open"),
        T0,
    )
    with pytest.raises(BinanceError):
        ex.place(
            "main",
            order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="20000", newClientOrderId="open"),
            T0,
        )
    assert ex.orders_by_client_id == {"filled": 2, "open": 1}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"side": "BUY", "type": "MARKET", "quantity": "1"}, -1102),  # no symbol
        (order(side="BUY", type="MARKET"), -1102),  # neither quantity nor quoteOrderQty
        (order(side="HOLD", type="MARKET", quantity="1"), -1117),
        (order(side="BUY", type="ICEBERG", quantity="1"), -1116),
        (order(side="BUY", type="LIMIT", quantity="0.01", price="20000"), -1102),  # no timeInForce
        ({"symbol": "DOGEUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}, -1121),
        (order(side="BUY", type="MARKET", quantity="abc"), -1100),
    ],
)
def test_malformed_orders(params: dict[str, str], code: int) -> None:
    with pytest.raises(BinanceError) as err:
        exchange().place("main", params, T0)
    assert err.value.code == code


def test_test_orders_check_everything_but_change_nothing() -> None:
    ex = exchange()
    ex.place("main", order(side="BUY", type="MARKET", quantity="0.01"), T0, test=True)
    assert ex.orders == {} and balances(ex)["USDT"] == (Decimal("10000"), Decimal(0))
    with pytest.raises(BinanceError):
        ex.place("main", order(side="BUY", type="MARKET", quantity="5"), T0, test=True)


# --- STOP_LOSS_LIMIT: a protective stop that holds while nobody is looking -----------------------------------


def stop_sell(stop: str, limit: str, quantity: str = "0.5", **extra: str) -> dict[str, str]:
    return order(
        side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity=quantity, price=limit, stopPrice=stop, **extra
    )


def test_a_stop_rests_untriggered_locking_its_amount() -> None:
    ex = exchange()
    placed = ex.place("main", stop_sell("29500", "29400"), T0)
    assert (placed.status, placed.working_time) == ("NEW", None)
    assert placed.order_id in ex.stop_orders and placed.order_id not in ex.open_orders
    assert balances(ex)["BTC"] == (Decimal("0.5"), Decimal("0.5"))
    ex.match(T0 + FIVE)  # flat at 30000: nothing happens
    assert placed.status == "NEW" and placed.to_json()["isWorking"] is False
    assert placed.to_json()["stopPrice"] == "29500.00000000"


def test_a_stop_triggers_at_the_replay_moment_the_path_crosses_it_and_fills_at_the_bid() -> None:
    ex = exchange()
    placed = ex.place("main", stop_sell("29500", "29400"), T0)
    ex.match(T0 + 4 * FIVE)  # one look long after: the path is replayed, not just its end
    # the dip candle (falling) goes 30000 -> 30100 (at 1/3) -> 29000 (at 2/3): it reaches 29500 at 6/11 of that leg
    third = FIVE // 3
    crossed = T0 + 2 * FIVE + third + -(-(30100 - 29500) * third // 1100)
    assert (placed.status, placed.working_time, placed.update_time) == ("FILLED", crossed, crossed)
    bid = ex.touch(ex.market.by_id["BTCUSDT"], crossed)[0].price
    assert placed.fills[0].price == bid >= Decimal("29400")
    assert ex.trades["main"][0].time == crossed and not ex.trades["main"][0].is_maker
    assert balances(ex)["BTC"] == (Decimal("0.5"), Decimal(0))
    assert balances(ex)["USDT"][0] == Decimal("10000") + placed.cumm_quote_qty - placed.fills[0].commission


def gap_market() -> Market:
    rows = np.array(
        [
            (T0, 30000.0, 30000.0, 30000.0, 30000.0, DEEP),
            (T0 + FIVE, 28000.0, 29500.0, 28000.0, 29500.0, DEEP),  # opens far below, then climbs back
        ]
    )
    candles = Candles(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5])
    return Market([SymbolMarket("BTC/USDT", [Series(FIVE, candles)])])


def test_a_stop_that_gaps_below_its_limit_rests_at_the_limit_until_the_price_comes_back() -> None:
    config = SimulatorConfig.model_validate({"initial_balances": {"USDT": "10000", "BTC": "1"}})
    ex = Exchange(config, gap_market())
    placed = ex.place("main", stop_sell("29500", "29400"), T0)
    ex.match(T0 + FIVE + 1)
    assert (placed.status, placed.working_time) == ("NEW", T0 + FIVE)  # triggered at the gap, now a limit
    assert placed.order_id in ex.open_orders
    ex.match(T0 + 2 * FIVE)  # the rising candle climbs back through 29400
    assert placed.status == "FILLED" and placed.fills[0].price == Decimal("29400")
    assert ex.trades["main"][0].is_maker


def test_a_stop_the_market_is_already_past_is_refused() -> None:
    with pytest.raises(BinanceError) as err:
        exchange().place("main", stop_sell("30500", "30400"), T0)
    assert (err.value.code, err.value.msg) == (-2010, "Order would trigger immediately.")


def test_a_cancelled_stop_gives_its_amount_back_and_never_triggers() -> None:
    ex = exchange()
    placed = ex.place("main", stop_sell("29500", "29400", newClientOrderId="stop-1"), T0)
    with pytest.raises(BinanceError):  # open: its id cannot be reused, even under Binance's rule
        ex.place("main", stop_sell("29500", "29400", newClientOrderId="stop-1"), T0)
    ex.cancel("main", order(origClientOrderId="stop-1"), T0 + 1)
    ex.match(T0 + 4 * FIVE)
    assert placed.status == "CANCELED" and ex.trades["main"] == []
    assert balances(ex)["BTC"] == (Decimal("1"), Decimal(0))


# --- the book: depth, slippage, partial fills --------------------------------------------------------------------


def test_a_market_order_larger_than_the_best_level_fills_level_by_level_at_worse_prices() -> None:
    ex = exchange(SHALLOW)
    book = ex.order_book(ex.market.by_id["BTCUSDT"], T0)
    best, second, third = book.asks[:3]
    part = to_grid(third.qty / 2, ex.market.by_id["BTCUSDT"].rules.step_size)
    qty = best.qty + second.qty + part
    placed = ex.place("main", order(side="BUY", type="MARKET", quantity=str(qty)), T0)
    assert placed.status == "FILLED"
    assert [(f.price, f.qty) for f in placed.fills] == [
        (best.price, best.qty),
        (second.price, second.qty),
        (third.price, part),
    ]
    assert best.price < second.price < third.price  # each level further from the touch costs more
    assert placed.cumm_quote_qty == sum((f.price * f.qty for f in placed.fills), Decimal(0))
    assert placed.cumm_quote_qty / qty > best.price  # the average is worse than the best level: slippage
    assert [t.trade_id for t in ex.trades["main"]] == [f.trade_id for f in placed.fills]


def test_slippage_grows_with_the_size_of_the_order() -> None:
    averages = []
    for qty in ("0.01", "0.1", "0.3"):
        ex = exchange(SHALLOW, initial_balances={"USDT": "100000", "BTC": "1"})
        placed = ex.place("main", order(side="BUY", type="MARKET", quantity=qty), T0)
        averages.append(placed.cumm_quote_qty / placed.executed_qty)
    assert averages[0] < averages[1] < averages[2]


def test_an_ioc_takes_what_its_price_reaches_and_expires_with_the_rest() -> None:
    ex = exchange(SHALLOW)
    book = ex.order_book(ex.market.by_id["BTCUSDT"], T0)
    limit = book.bids[1].price  # reaches the two best bids
    qty = book.bids[0].qty + book.bids[1].qty + book.bids[2].qty
    placed = ex.place(
        "main", order(side="SELL", type="LIMIT", timeInForce="IOC", quantity=str(qty), price=str(limit)), T0
    )
    assert placed.status == "EXPIRED"
    assert [(f.price, f.qty) for f in placed.fills] == [(b.price, b.qty) for b in book.bids[:2]]
    assert placed.executed_qty == book.bids[0].qty + book.bids[1].qty
    assert balances(ex)["BTC"] == (Decimal(1) - placed.executed_qty, Decimal(0))  # the rest is free again


def test_a_fok_that_the_book_cannot_fill_whole_takes_nothing() -> None:
    ex = exchange(SHALLOW)
    book = ex.order_book(ex.market.by_id["BTCUSDT"], T0)
    qty = book.asks[0].qty + book.asks[1].qty
    params = order(side="BUY", type="LIMIT", timeInForce="FOK", quantity=str(qty), price=str(book.asks[0].price))
    placed = ex.place("main", params, T0)
    assert (placed.status, placed.executed_qty, ex.trades["main"]) == ("EXPIRED", Decimal(0), [])
    assert balances(ex)["USDT"] == (Decimal(10000), Decimal(0))


def test_a_market_order_the_book_cannot_fill_expires_with_what_it_got() -> None:
    ex = exchange(SHALLOW, book_levels=3)
    book = ex.order_book(ex.market.by_id["BTCUSDT"], T0)
    held = sum((level.qty for level in book.bids), Decimal(0))
    placed = ex.place("main", order(side="SELL", type="MARKET", quantity=str(held + Decimal("0.1"))), T0)
    assert (placed.status, placed.executed_qty, len(placed.fills)) == ("EXPIRED", held, 3)
    assert balances(ex)["BTC"] == (Decimal(1) - held, Decimal(0))


def test_a_gtc_limit_takes_what_crosses_rests_with_the_rest_and_fills_where_the_path_reaches_it() -> None:
    ex = exchange(SHALLOW)
    book = ex.order_book(ex.market.by_id["BTCUSDT"], T0)
    qty = book.asks[0].qty + Decimal("0.2")
    limit = book.asks[0].price
    placed = ex.place(
        "main", order(side="BUY", type="LIMIT", timeInForce="GTC", quantity=str(qty), price=str(limit)), T0
    )
    assert placed.status == "PARTIALLY_FILLED" and placed.executed_qty == book.asks[0].qty
    assert placed.order_id in ex.open_orders
    assert balances(ex)["USDT"][1] == Decimal("0.2") * limit  # the rest stays reserved at its limit
    ex.match(T0 + 3 * FIVE)  # the path is at or below the limit from the start: the rest fills as a maker
    assert placed.status == "FILLED"
    makers = [t for t in ex.trades["main"] if t.is_maker]
    assert makers and all(t.price == limit for t in makers)
    assert balances(ex)["USDT"][1] == Decimal(0)


def test_a_large_resting_order_fills_over_several_candles_with_the_volume_that_traded_at_its_price() -> None:
    rows = np.array([(T0 + i * FIVE, 100.0, 101.0, 99.0, 100.0, 10.0) for i in range(6)])
    candles = Candles(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5])
    config = SimulatorConfig.model_validate({"initial_balances": {"USDT": "10000", "ETH": "0"}})
    ex = Exchange(config, Market([SymbolMarket("ETH/USDT", [Series(FIVE, candles)])]))
    # each candle goes 100 -> 99 -> 101 -> 100: a quarter of its time at or below 99.5, so 2.5 ETH trades there
    placed = ex.place(
        "main",
        {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "8", "price": "99.5"},
        T0,
    )
    assert placed.status == "NEW"
    ex.match(T0 + FIVE)
    first = placed.executed_qty
    assert (placed.status, first) == ("PARTIALLY_FILLED", Decimal("2.5"))
    ex.match(T0 + 6 * FIVE)
    assert placed.status == "FILLED"
    # one fill per candle, each at the moment that candle's path first fell to 99.5 (a sixth into the candle)
    fills = [(t.time, t.qty) for t in ex.trades["main"]]
    assert fills == [(T0 + i * FIVE + FIVE // 6, Decimal(q)) for i, q in enumerate(("2.5", "2.5", "2.5", "0.5"))]


def test_resting_fills_do_not_depend_on_how_often_the_exchange_looks() -> None:
    def run(looks: int) -> list[tuple[int, Decimal]]:
        ex = exchange(SHALLOW)
        ex.place("main", order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.3", price="29400"), T0)
        for k in range(1, looks + 1):
            ex.match(T0 + 3 * FIVE * k // looks)
        return [(t.time, t.qty) for t in ex.trades["main"]]

    once = run(1)
    assert once and once == run(7) == run(50)


def test_the_book_depth_scales_with_the_previous_candles_volume_and_the_spread_with_its_range() -> None:
    calm, busy = exchange(2_000.0), exchange(20_000.0)
    symbol_calm, symbol_busy = calm.market.by_id["BTCUSDT"], busy.market.by_id["BTCUSDT"]
    depth_calm = sum((level.qty for level in calm.order_book(symbol_calm, T0 + FIVE + 1, 20).asks), Decimal(0))
    depth_busy = sum((level.qty for level in busy.order_book(symbol_busy, T0 + FIVE + 1, 20).asks), Decimal(0))
    assert 8 < depth_busy / depth_calm < 12
    flat_bid, flat_ask = (
        level.price for level in calm.touch(symbol_calm, T0 + 2 * FIVE)
    )  # after a candle that did not move
    wild_bid, wild_ask = (
        level.price for level in calm.touch(symbol_calm, T0 + 3 * FIVE + 1)
    )  # after the 1100-point dip candle
    flat_spread = (flat_ask - flat_bid) / flat_ask * 10_000
    wild_spread = (wild_ask - wild_bid) / wild_ask * 10_000
    assert flat_spread == pytest.approx(2, abs=0.1) and wild_spread > 10


def test_the_book_is_seeded_by_the_candles_and_never_by_the_future() -> None:
    ex = exchange()
    symbol = ex.market.by_id["BTCUSDT"]
    again = Exchange(ex.config, market())  # another exchange on the same candles
    assert list(ex.order_book(symbol, T0 + FIVE + 5).asks) == list(
        again.order_book(again.market.by_id["BTCUSDT"], T0 + FIVE + 5).asks
    )
    # inside the dip candle the book is shaped by the flat candle before it: the dip's range is not known yet
    during = ex.order_book(symbol, T0 + 2 * FIVE + 10)
    spread = (during.asks[0].price - during.bids[0].price) / during.asks[0].price * 10_000
    assert spread < 2.5


def test_market_notional_is_checked_at_the_five_minute_average_price_not_at_the_fill() -> None:
    ex = exchange()
    at_the_low = T0 + 2 * FIVE + 2 * FIVE // 3  # the dip at 29000; the last five minutes averaged about 29870
    assert ex.market.by_id["BTCUSDT"].average_price(at_the_low, 5) == pytest.approx(29_867, abs=5)
    # 0.00017 BTC: 5.08 USDT at the average (the minimum is 5), 4.93 at the bid it fills at
    placed = ex.place("main", order(side="SELL", type="MARKET", quantity="0.00017"), at_the_low)
    assert placed.status == "FILLED" and placed.cumm_quote_qty < 5
    with pytest.raises(BinanceError) as err:  # 4.78 USDT at the average
        ex.place("main", order(side="SELL", type="MARKET", quantity="0.00016"), at_the_low)
    assert err.value.msg == "Filter failure: NOTIONAL"


def test_first_fills_are_reported_for_the_unfilled_order_count() -> None:
    credits: list[tuple[str, int]] = []
    ex = exchange()
    ex.on_first_fill = lambda account, orders: credits.append((account, orders))
    ex.place("main", order(side="BUY", type="MARKET", quantity="0.01"), T0)  # a taker: one order back
    resting = ex.place("main", order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="29200"), T0)
    ex.place("main", order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="20000"), T0)
    ex.match(T0 + 3 * FIVE)
    assert resting.status == "FILLED"
    assert credits == [("main", 1), ("main", 5)]  # the maker's first fill gives more back; the unfilled one none

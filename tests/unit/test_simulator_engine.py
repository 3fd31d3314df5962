"""Orders against the replay price: filters, balances, fees, market and limit fills, cancel, duplicates."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from traiding.domain.candles import Candles
from traiding_simulator.config import SimulatorConfig
from traiding_simulator.engine import Exchange
from traiding_simulator.errors import BinanceError
from traiding_simulator.market import MINUTE_MS, Market, Series, SymbolMarket

T0 = 1_700_000_000_000 - 1_700_000_000_000 % (5 * MINUTE_MS)
FIVE = 5 * MINUTE_MS


def market() -> Market:
    # flat at 30000 for two candles, then a dip to 29000 and back
    rows = np.array(
        [
            (T0, 30000.0, 30000.0, 30000.0, 30000.0, 1.0),
            (T0 + FIVE, 30000.0, 30000.0, 30000.0, 30000.0, 1.0),
            (T0 + 2 * FIVE, 30000.0, 30100.0, 29000.0, 29500.0, 1.0),
        ]
    )
    candles = Candles(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5])
    return Market([SymbolMarket("BTC/USDT", [Series(FIVE, candles)])])


def exchange(**overrides: object) -> Exchange:
    config = SimulatorConfig.model_validate(
        {"initial_balances": {"USDT": "10000", "BTC": "1"}, "spread_bps": 2.0, **overrides}
    )
    return Exchange(config, market())


def order(**params: str) -> dict[str, str]:
    return {"symbol": "BTCUSDT", **params}


def balances(ex: Exchange) -> dict[str, tuple[Decimal, Decimal]]:
    return {a: (b.free, b.locked) for a, b in ex.account("main").balances.items()}


def test_book_is_the_replay_price_plus_minus_half_the_spread_on_the_tick_grid() -> None:
    ex = exchange()
    bid, ask = ex.book(ex.market.by_id["BTCUSDT"], T0)
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


def test_a_reused_client_order_id_is_rejected_and_counted() -> None:
    ex = exchange()
    ex.place("main", order(side="BUY", type="MARKET", quantity="0.01", newClientOrderId="cid"), T0)
    with pytest.raises(BinanceError) as err:
        ex.place("main", order(side="BUY", type="MARKET", quantity="0.01", newClientOrderId="cid"), T0)
    assert (err.value.code, err.value.msg) == (-2010, "Duplicate order sent.")
    assert ex.orders_by_client_id["cid"] == 1 and ex.order_attempts_by_client_id["cid"] == 2
    assert len(ex.orders) == 1


def test_binance_mode_allows_reusing_the_id_of_a_filled_order_but_not_an_open_one() -> None:
    ex = exchange(duplicate_client_order_id="open")
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
    bid, _ = ex.book(ex.market.by_id["BTCUSDT"], crossed)
    assert placed.fills[0].price == bid >= Decimal("29400")
    assert ex.trades["main"][0].time == crossed and not ex.trades["main"][0].is_maker
    assert balances(ex)["BTC"] == (Decimal("0.5"), Decimal(0))
    assert balances(ex)["USDT"][0] == Decimal("10000") + placed.cumm_quote_qty - placed.fills[0].commission


def gap_market() -> Market:
    rows = np.array(
        [
            (T0, 30000.0, 30000.0, 30000.0, 30000.0, 1.0),
            (T0 + FIVE, 28000.0, 29500.0, 28000.0, 29500.0, 1.0),  # opens far below, then climbs back
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
    ex = exchange(duplicate_client_order_id="open")
    placed = ex.place("main", stop_sell("29500", "29400", newClientOrderId="stop-1"), T0)
    with pytest.raises(BinanceError):  # open: its id cannot be reused, even under Binance's rule
        ex.place("main", stop_sell("29500", "29400", newClientOrderId="stop-1"), T0)
    ex.cancel("main", order(origClientOrderId="stop-1"), T0 + 1)
    ex.match(T0 + 4 * FIVE)
    assert placed.status == "CANCELED" and ex.trades["main"] == []
    assert balances(ex)["BTC"] == (Decimal("1"), Decimal(0))

"""The trading session on a scripted market: signals to orders, stops, degraded exchange, lost answers, resume.

The market is a small in-memory exchange whose candles the test scripts; orders go through the real
paper broker. (The real ccxt client against the simulator is covered in tests/integration.) The order life
cycle's own cases (write-ahead intents, reconciliation, fees, dust) are in test_order_lifecycle.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from traiding.domain.candles import CandleCache, Candles
from traiding.domain.statemachine import OutcomeKind, Phase
from traiding.pipeline.context import RunContext
from traiding.pipeline.events import EventLog, MemorySink
from traiding.pipeline.history import HistoryStore
from traiding.pipeline.price_series import PriceSeries
from traiding.pipeline.runner import advance
from traiding.pipeline.session import TradingSession
from traiding.resource import PhaseRecord, TradingRunSpec, TradingRunStatus
from traiding_adapters.client_ids import client_order_id
from traiding_adapters.errors import (
    AuthenticationFailed,
    CircuitOpen,
    ClockSkewError,
    ExchangeUnavailable,
    InvalidOrder,
    OrderOutcomeUnknown,
)
from traiding_adapters.exchange import Market, Order, OrderBook, OrderRequest, Ticker
from traiding_adapters.paper import PaperBroker, PaperSettings

TF = 300_000
T0 = 1_700_000_000_000 // TF * TF
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SYMBOL = "ETH/USDT"


class ScriptedMarket:
    """Candles revealed one at a time (the same count for every symbol); the newest visible one is forming."""

    exchange_id = "scripted"
    circuit_state = "closed"

    def __init__(
        self,
        closes: list[float] | dict[str, list[float]],
        lows: dict[int, float] | None = None,
        visible: int = 12,
    ) -> None:
        by_symbol = closes if isinstance(closes, dict) else {SYMBOL: closes}
        self.close = {s: np.asarray(c, dtype=np.float64) for s, c in by_symbol.items()}
        self.low = {s: c * 0.999 for s, c in self.close.items()}
        for index, low in (lows or {}).items():
            self.low[SYMBOL][index] = low
        self.visible = visible
        self.fail_next: int = 0
        self.ohlcv_error: Exception | None = None
        self.ohlcv_hang = False

    def advance(self, candles: int = 1) -> None:
        self.visible = min([self.visible + candles, *(len(c) for c in self.close.values())])

    def _check(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ExchangeUnavailable("scripted: 503 from the exchange")

    def price(self, symbol: str = SYMBOL) -> float:
        return float(self.close[symbol][self.visible - 1])

    async def load_markets(self) -> dict[str, Market]:
        return {
            s: Market(symbol=s, base=s.split("/")[0], quote="USDT", min_notional=5.0, step_size=0.0001, tick_size=0.01)
            for s in self.close
        }

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self._check()
        now = T0 + (self.visible - 1) * TF + TF // 2
        price = self.price(symbol)
        return Ticker(symbol=symbol, timestamp=now, bid=price - 0.01, ask=price + 0.01, last=price)

    async def fetch_order_book(self, symbol: str, limit: int = 100) -> OrderBook:
        self._check()
        price = self.price(symbol)
        return OrderBook(symbol=symbol, timestamp=None, bids=((price - 0.01, 1e6),), asks=((price + 0.01, 1e6),))

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        self._check()
        if self.ohlcv_hang:
            await asyncio.sleep(3600)
        if self.ohlcv_error is not None:
            raise self.ohlcv_error
        times = T0 + np.arange(self.visible, dtype=np.int64) * TF
        keep = (times >= since_ms) & (times < until_ms)
        close = self.close[symbol][: self.visible][keep]
        low = self.low[symbol][: self.visible][keep]
        return Candles(times[keep], close, close * 1.001, low, close, np.ones(close.size))

    async def fetch_recent_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        return await self.fetch_ohlcv(symbol, timeframe, since_ms, until_ms)

    async def server_time(self) -> int:
        return T0 + self.visible * TF


class AnswerLostBroker(PaperBroker):
    """Places the order, then loses the answer once (a timeout after acceptance); can also refuse sells."""

    lose_next = False
    refuse_sells = False

    async def create_order(self, request: OrderRequest) -> Order:
        if request.side == "sell" and request.type == "market" and self.refuse_sells:
            raise CircuitOpen("scripted: circuit open, nothing sent", last_error="503")
        order = await super().create_order(request)
        if self.lose_next:
            self.lose_next = False
            raise OrderOutcomeUnknown("answer lost", request.client_order_id)
        return order


def spec_of(symbols: list[str] | None = None, **risk: Any) -> TradingRunSpec:
    return TradingRunSpec.model_validate(
        {
            "market": {"symbols": symbols or [SYMBOL], "timeframe": "5m"},
            "strategy": {"name": "sma-crossover", "params": {"fast": 2, "slow": 4}},
            "risk": {"maxPositionFraction": 0.5, **risk},
            "costs": {"feeRate": 0.001, "slippagePct": 0.0},
            "session": {"duration": "2h"},
        }
    )


def make_context(
    market: ScriptedMarket, tmp_path: Path, symbols: list[str] | None = None, **risk: Any
) -> tuple[RunContext, MemorySink, AnswerLostBroker]:
    spec = spec_of(symbols, **risk)
    sink = MemorySink()
    bases = {s.split("/")[0]: 0.0 for s in spec.market.symbols}
    broker = AnswerLostBroker(
        market,
        {"USDT": 10_000.0, **bases},
        PaperSettings(fee_rate=0.001, slippage_bps=0, candle_timeframe="5m"),
    )
    ctx = RunContext(
        run_name="t",
        run_uid="abc123",
        spec=spec,
        exchange=market,  # type: ignore[arg-type]
        orders=broker,
        events=EventLog("t", [sink]),
        history=HistoryStore(CandleCache(tmp_path)),
        has_credentials=False,
        prices=PriceSeries(),
    )
    return ctx, sink, broker


def fills(sink: MemorySink) -> list[dict[str, Any]]:
    return [e.metrics for e in sink.events if e.type == "OrderFilled"]


def event_types(sink: MemorySink) -> list[str]:
    return [e.type for e in sink.events]


async def step_candles(ctx: RunContext, checkpoint: dict[str, Any], market: ScriptedMarket, candles: int) -> list[Any]:
    """Reveal `candles` more candles one at a time, stepping the session after each; the outcome kinds."""
    kinds = []
    for _ in range(candles):
        market.advance()
        kinds.append((await TradingSession(ctx, checkpoint).step()).outcome.kind)
    return kinds


def trading_status() -> TradingRunStatus:
    return TradingRunStatus(phase="Trading", phases={"Trading": PhaseRecord(state="Running", startedAt=NOW)})


# 12 flat candles of history, then a rise (fast SMA crosses above slow) and a fall (crosses below).
FLAT, RISE, FALL = [100.0] * 12, [101.0, 103.0, 106.0, 108.0], [104.0, 99.0, 97.0, 96.0]


async def test_signals_become_orders_with_client_ids_derived_from_their_intents(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + FALL + [96.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    result = await TradingSession(ctx, checkpoint).step()  # learns the history, trades nothing yet
    assert result.outcome.kind is OutcomeKind.RUNNING
    assert fills(sink) == []
    await step_candles(ctx, checkpoint, market, len(RISE) + len(FALL))
    buy, sell = fills(sink)
    entry_candle = T0 + len(FLAT) * TF  # the first rising candle's signal
    assert buy["client_order_id"] == client_order_id("abc123", f"{SYMBOL}|buy|market|{entry_candle}|entry|0")
    assert (buy["side"], sell["side"], sell["reason"]) == ("buy", "sell", "signal")
    trade = checkpoint["session"]["trades"][0]
    assert trade["reason"] == "signal"
    balances = await broker.fetch_balances()
    assert balances["ETH"].total == pytest.approx(0.0, abs=1e-9)
    # Sized from maxPositionFraction of equity at the signal candle's close; it fills at the next (higher) price.
    assert buy["amount"] * 101.0 == pytest.approx(5_000 / 1.001, rel=1e-3)
    assert buy["price"] > 101.0
    # The books agree with the account: cash is what the paper account holds, fees included.
    assert checkpoint["session"]["cash"] == pytest.approx(balances["USDT"].total, abs=1e-6)
    assert checkpoint["session"]["fees"] == pytest.approx(buy["fee"] + sell["fee"])


async def test_a_protective_stop_rests_on_the_exchange_and_fills_when_the_price_crosses_it(tmp_path: Path) -> None:
    closes = FLAT + RISE + [108.5, 108.7, 109.0] + [109.0] * 30
    crash = len(FLAT) + len(RISE) + 1
    market = ScriptedMarket(closes, lows={crash: 90.0})
    ctx, sink, broker = make_context(market, tmp_path, stopLossPct=5)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    await step_candles(ctx, checkpoint, market, 2)  # the entry
    position = checkpoint["session"]["positions"][SYMBOL]
    assert position["stop_order"] is not None
    stop_order = await broker.fetch_order(SYMBOL, client_order_id=position["stop_order"])
    assert (stop_order.type, stop_order.status) == ("stop_loss_limit", "open")
    assert stop_order.stop_price == pytest.approx(round(position["entry_price"] * 0.95, 2))
    assert stop_order.amount == pytest.approx(position["amount"])
    assert (await broker.fetch_balances())["ETH"].free == pytest.approx(0.0, abs=1e-9)  # reserved by the stop
    # The paper broker decides a resting stop on closed candles (the path inside a forming one is not known yet):
    # the crash candle is still forming here, and the stop holds its amount.
    await step_candles(ctx, checkpoint, market, len(RISE))
    assert checkpoint["session"]["trades"] == []
    await step_candles(ctx, checkpoint, market, 1)  # the crash candle closed: it crossed the stop
    [trade] = checkpoint["session"]["trades"]
    assert trade["reason"] == "stop_loss"
    # It met the book of the moment the price fell to the stop: the bids just below it, never the candle's low of
    # 90, never below the stop's limit.
    assert stop_order.price is not None and stop_order.stop_price is not None
    assert stop_order.price <= trade["exit_price"] < stop_order.stop_price
    assert trade["exit_price"] == pytest.approx(stop_order.stop_price, rel=1e-3)
    assert trade["exit_time"] == T0 + crash * TF
    assert checkpoint["session"]["positions"][SYMBOL]["amount"] == 0
    assert "StopPlaced" in event_types(sink)
    assert len([o for o in broker._orders.values() if o.side == "sell"]) == 1  # the stop is the only exit


async def test_without_exchange_stops_the_session_checks_the_stop_on_each_candle(tmp_path: Path) -> None:
    closes = FLAT + RISE + [108.5, 108.7, 109.0] + [109.0] * 30
    stop_candle = len(FLAT) + len(RISE) + 1
    market = ScriptedMarket(closes, lows={stop_candle: 90.0})
    ctx, _, broker = make_context(market, tmp_path, stopLossPct=5, stopOnExchange=False)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    await step_candles(ctx, checkpoint, market, len(RISE) + 3)
    assert [t["reason"] for t in checkpoint["session"]["trades"]] == ["stop_loss"]
    assert {o.type for o in broker._orders.values()} == {"market"}


async def test_a_degraded_exchange_opens_no_new_position(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + FALL + [96.0] * 30)
    ctx, sink, _ = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.fail_next = 1
    market.advance()
    failed = await TradingSession(ctx, checkpoint).step()
    assert failed.outcome.kind is OutcomeKind.TRANSIENT
    await step_candles(ctx, checkpoint, market, len(RISE) + len(FALL))
    skipped = [e.message for e in sink.events if e.type == "EntrySkipped"]
    assert skipped == [f"{SYMBOL}: exchange degraded (recent errors): no new positions until it recovers"]
    assert fills(sink) == []


async def test_a_degraded_exchange_still_closes_an_open_position(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + FALL + [96.0] * 30)
    ctx, sink, _ = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    await step_candles(ctx, checkpoint, market, len(RISE))
    assert [f["side"] for f in fills(sink)] == ["buy"]
    market.fail_next = 1
    market.advance()
    assert (await TradingSession(ctx, checkpoint).step()).outcome.kind is OutcomeKind.TRANSIENT
    # The fall's second candle crosses below: the exit arrives while still degraded.
    await step_candles(ctx, checkpoint, market, 2)
    assert checkpoint["session"]["degraded_steps"] > 0
    assert [f["side"] for f in fills(sink)] == ["buy", "sell"]


async def test_a_lost_order_answer_is_resolved_by_client_id_never_resent(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    broker.lose_next = True
    outcomes = await step_candles(ctx, checkpoint, market, len(RISE) + 1)
    assert OutcomeKind.TRANSIENT in outcomes
    assert checkpoint["session"]["intents"] == {}
    # exactly one order exists at the broker, and the session booked it once
    assert len(broker._orders) == 1
    assert checkpoint["session"]["positions"][SYMBOL]["amount"] > 0
    assert list(checkpoint["session"]["orders"]) == list(broker._orders)
    assert event_types(sink).count("OrderFilled") == 1


async def test_a_new_session_object_resumes_from_the_json_checkpoint(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + FALL + [96.0] * 30)
    ctx, sink, _ = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    await step_candles(ctx, checkpoint, market, len(RISE))
    restored = json.loads(json.dumps(checkpoint))  # what the cluster stores
    await step_candles(ctx, restored, market, len(FALL))
    assert [f["side"] for f in fills(sink)] == ["buy", "sell"]
    assert len(restored["session"]["orders"]) == 2


async def test_the_session_ends_after_its_duration_flat(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 40)
    ctx, _, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    kinds = []
    for _ in range(40):
        kinds.append((await TradingSession(ctx, checkpoint).step()).outcome.kind)
        if kinds[-1] is OutcomeKind.PASSED:
            break
        market.advance()
    assert kinds[-1] is OutcomeKind.PASSED
    assert len(kinds) == 2 * 60 // 5 + 1  # 24 candles of 5m in 2h, plus the first step
    assert [t["reason"] for t in checkpoint["session"]["trades"]] == ["session_end"]
    assert (await broker.fetch_balances())["ETH"].total == pytest.approx(0.0, abs=1e-9)


async def test_after_downtime_only_the_newest_candle_is_acted_on(tmp_path: Path) -> None:
    # The rise (an entry signal) and the fall (an exit signal) both close while no driver runs.
    market = ScriptedMarket(FLAT + RISE + FALL + [96.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.advance(len(RISE) + len(FALL) + 3)
    result = await TradingSession(ctx, checkpoint).step()
    assert result.outcome.kind is OutcomeKind.RUNNING
    assert broker._orders == {}  # no order for a signal of a candle that closed while away
    [skipped] = [e for e in sink.events if e.type == "SignalsSkipped"]
    assert skipped.metrics["skipped"] >= 1 and "entry at" in skipped.message
    # Prices, equity and the candle bookkeeping still cover every candle that closed meanwhile.
    session = checkpoint["session"]
    assert session["last_closed"][SYMBOL] == T0 + (market.visible - 2) * TF
    assert ctx.prices is not None and len(ctx.prices.points[SYMBOL]) == len(RISE) + len(FALL) + 3
    # The series is the report's, kept beside the status: the checkpoint has only what the summary needs.
    assert "prices" not in session
    assert session["first_prices"][SYMBOL] == ctx.prices.points[SYMBOL][0][1]


async def test_a_stop_crossed_while_away_exits_on_the_newest_candle(tmp_path: Path) -> None:
    closes = FLAT + RISE + [108.5, 108.7, 109.0] + [109.0] * 30
    market = ScriptedMarket(closes, lows={len(FLAT) + len(RISE) + 1: 90.0})
    ctx, _, _ = make_context(market, tmp_path, stopLossPct=5, stopOnExchange=False)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    await step_candles(ctx, checkpoint, market, 2)
    assert checkpoint["session"]["positions"][SYMBOL]["amount"] > 0
    market.advance(5)  # the candle reaching the stop closes while away
    await TradingSession(ctx, checkpoint).step()
    assert [t["reason"] for t in checkpoint["session"]["trades"]] == ["stop_loss"]


async def test_an_open_circuit_keeps_the_order_for_the_next_step_and_never_sends_it_blindly(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, sink, _ = make_context(market, tmp_path)

    class OpenCircuit(AnswerLostBroker):
        async def create_order(self, request: OrderRequest) -> Order:
            raise CircuitOpen("scripted: circuit open", last_error="503")

    ctx.orders = OpenCircuit(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0.001, slippage_bps=0))
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.advance()
    await TradingSession(ctx, checkpoint).step()
    market.advance()
    failed = await TradingSession(ctx, checkpoint).step()  # the buy meets the open circuit
    assert failed.outcome.kind is OutcomeKind.TRANSIENT
    assert checkpoint["session"]["intents"] == {}  # refused before it left: certainly not placed
    assert len(ctx.orders._orders) == 0
    assert "ExchangeError" in event_types(sink)


async def test_a_clock_skew_is_retried_not_fatal(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, _ = make_context(market, tmp_path)
    status = trading_status()
    status, _ = await advance(ctx, status, NOW)
    market.ohlcv_error = ClockSkewError("binance rejected the request timestamp (-1021): sync the clock")
    market.advance()
    status, decision = await advance(ctx, status, NOW)
    assert (decision.phase, decision.reason, decision.attempts) == (Phase.TRADING, "ClockSkewError", 1)
    market.ohlcv_error = None
    market.advance()
    status, decision = await advance(ctx, status, NOW)
    assert (decision.phase, decision.attempts) == (Phase.TRADING, 0)


class RefusingSells(AnswerLostBroker):
    refuse = True

    async def create_order(self, request: OrderRequest) -> Order:
        if request.side == "sell" and self.refuse:
            raise InvalidOrder("scripted: the exchange refuses this sell")
        return await super().create_order(request)


async def trade_into_a_position(ctx: RunContext, market: ScriptedMarket) -> TradingRunStatus:
    status = trading_status()
    for _ in range(4):
        status, _ = await advance(ctx, status, NOW)
        market.advance()
    assert status.checkpoint["session"]["positions"][SYMBOL]["amount"] > 0
    return status


async def test_a_session_that_cannot_close_at_its_end_liquidates_until_it_can(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 60)
    ctx, sink, _ = make_context(market, tmp_path)
    broker = RefusingSells(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0.001, slippage_bps=0))
    ctx.orders = broker
    status = await trade_into_a_position(ctx, market)
    decision = None
    for _ in range(40):
        market.advance()
        status, decision = await advance(ctx, status, NOW)
        if decision.phase is not Phase.TRADING:
            break
    assert decision is not None and decision.phase is Phase.LIQUIDATING
    assert status.phases["Trading"].state == "Passed"
    for attempt in range(1, 4):  # refused again and again: it stays, retrying with backoff, and says so
        status, decision = await advance(ctx, status, NOW)
        assert (decision.phase, decision.attempts) == (Phase.LIQUIDATING, attempt)
        assert decision.retry_after is not None
    liquidated = {c.type: c for c in status.conditions}["Liquidated"]
    assert (liquidated.status, liquidated.reason) == ("False", "ExitRefused")
    assert [e.level for e in sink.events if e.type == "ExitRefused"] == ["warning"] * 3
    broker.refuse = False
    status, decision = await advance(ctx, status, NOW)
    assert (decision.phase, decision.reason) == (Phase.REPORTING, "SessionEnded")
    assert status.checkpoint["session"]["positions"][SYMBOL]["amount"] == 0
    assert {c.type: c for c in status.conditions}["Liquidated"].status == "True"


async def test_cancelling_a_session_liquidates_first(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path)
    status = await trade_into_a_position(ctx, market)
    status, decision = await advance(ctx, status, NOW, cancel_requested=True)
    assert decision.phase is Phase.LIQUIDATING
    assert status.phases["Trading"].state == "Cancelled"
    broker.refuse_sells = True
    status, decision = await advance(ctx, status, NOW, cancel_requested=True)
    assert decision.phase is Phase.LIQUIDATING  # the exchange refused the exit: the cancel waits for it
    broker.refuse_sells = False
    status, decision = await advance(ctx, status, NOW, cancel_requested=True)
    assert (decision.phase, decision.reason) == (Phase.CANCELLED, "Cancelled")
    assert status.checkpoint["session"]["positions"][SYMBOL]["amount"] == 0
    assert [t["reason"] for t in status.checkpoint["session"]["trades"]] == ["liquidation"]
    assert (await broker.fetch_balances())["ETH"].total == pytest.approx(0.0, abs=1e-9)


async def test_a_failing_session_liquidates_then_fails_with_the_reason(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path)
    status = await trade_into_a_position(ctx, market)
    market.ohlcv_error = AuthenticationFailed("API key rejected by scripted: check the key")  # not transient
    status, decision = await advance(ctx, status, NOW)
    assert decision.phase is Phase.LIQUIDATING
    status, decision = await advance(ctx, status, NOW)
    assert (decision.phase, decision.reason) == (Phase.FAILED, "AuthenticationFailed")
    assert decision.message.endswith("; open positions closed")
    assert (await broker.fetch_balances())["ETH"].total == pytest.approx(0.0, abs=1e-9)


async def test_deleting_with_leave_positions_ends_at_once_and_keeps_the_stop(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path, stopLossPct=5)
    ctx.spec = TradingRunSpec.model_validate(
        {**ctx.spec.model_dump(), "session": {"duration": "2h", "onDelete": "LeavePositions"}}
    )
    status = await trade_into_a_position(ctx, market)
    status, decision = await advance(ctx, status, NOW, deleting=True)
    assert (decision.phase, decision.reason) == (Phase.CANCELLED, "Deleted")
    [left] = [e for e in sink.events if e.type == "PositionsLeft"]
    stop = status.checkpoint["session"]["positions"][SYMBOL]["stop_order"]
    assert stop in left.message and left.level == "warning"
    assert (await broker.fetch_order(SYMBOL, client_order_id=stop)).status == "open"


async def test_a_step_that_hangs_is_cancelled_at_the_phase_deadline(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, _ = make_context(market, tmp_path)
    ctx.spec = ctx.spec.model_copy(update={"timeouts": ctx.spec.timeouts.model_copy(update={"trading": "3h"})})
    started = NOW - timedelta(hours=3) + timedelta(seconds=0.3)  # 0.3 s of the deadline left
    status = TradingRunStatus(phase="Trading", phases={"Trading": PhaseRecord(state="Running", startedAt=started)})
    market.ohlcv_hang = True
    status, decision = await asyncio.wait_for(advance(ctx, status, NOW), timeout=5)
    assert (decision.phase, decision.reason) == (Phase.FAILED, "PhaseTimeout")
    assert decision.message == "Trading did not finish within its deadline of 3:00:00"
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert (ready.status, ready.reason, ready.message) == ("False", "PhaseTimeout", decision.message)


async def test_a_replay_faster_than_the_polling_still_acts_on_the_candles_of_its_last_polls(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + FALL + [96.0] * 30)
    ctx, sink, _ = make_context(market, tmp_path)
    # At 3000x a 5m candle lasts 0.1 s: a step every 0.2 s sees two or three new ones, none of them "missed".
    ctx.spec = TradingRunSpec.model_validate(
        {**ctx.spec.model_dump(), "exchange": {"simulator": {"name": "sim", "speed": 3000}}}
    )
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    for _ in range(3):
        market.advance(3)
        await TradingSession(ctx, checkpoint).step()
    assert [f["side"] for f in fills(sink)] == ["buy", "sell"]
    assert "SignalsSkipped" not in event_types(sink)


async def test_a_low_from_before_the_entry_does_not_stop_out_the_new_position(tmp_path: Path) -> None:
    # One step sees several fresh candles (a fast replay): a dip, then the rise that enters, then flat. The dip
    # came before the position existed: it is no reason to sell it.
    closes = FLAT + RISE + [108.0] * 30
    market = ScriptedMarket(closes, lows={len(FLAT) - 1: 80.0})
    ctx, _, broker = make_context(market, tmp_path, stopLossPct=5, stopOnExchange=False)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.advance(len(RISE) + 3)
    session = TradingSession(ctx, checkpoint)
    session.fresh_ms = 100 * TF  # every new candle of this step counts as fresh, as in a fast replay
    await session.step()
    assert checkpoint["session"]["trades"] == []
    assert checkpoint["session"]["positions"][SYMBOL]["amount"] > 0
    assert [o.side for o in broker._orders.values()] == ["buy"]


@pytest.mark.parametrize(("timeframe", "fresh_candles"), [("1m", 1), ("5m", 1), ("1h", 1)])
def test_after_a_missed_poll_only_the_newest_candle_is_fresh_at_wall_speed(
    tmp_path: Path, timeframe: str, fresh_candles: int
) -> None:
    market = ScriptedMarket(FLAT)
    ctx, _, _ = make_context(market, tmp_path)
    spec = ctx.spec.model_copy(update={"market": ctx.spec.market.model_copy(update={"timeframe": timeframe})})
    ctx = dataclasses.replace(ctx, spec=spec)
    session = TradingSession(ctx, {})
    # Polling twice per candle, at most one candle closes per poll: an older one closed during downtime.
    assert session.fresh_ms == fresh_candles * session.tf

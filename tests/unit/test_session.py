"""The trading session on a scripted market: signals to orders, stops, degraded exchange, lost answers, resume.

The market is a small in-memory exchange whose candles the test scripts; orders go through the real
paper broker. (The real ccxt client against the simulator is covered in tests/integration.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from traiding.domain.candles import CandleCache, Candles
from traiding.domain.statemachine import OutcomeKind, Phase
from traiding.pipeline.context import RunContext
from traiding.pipeline.events import EventLog, MemorySink
from traiding.pipeline.runner import advance
from traiding.pipeline.session import TradingSession
from traiding.resource import PhaseRecord, TradingRunSpec, TradingRunStatus
from traiding_adapters.client_ids import client_order_id
from traiding_adapters.errors import (
    AuthenticationFailed,
    CircuitOpen,
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
    """Candles revealed one at a time; the newest visible candle is still forming."""

    exchange_id = "scripted"
    circuit_state = "closed"

    def __init__(self, closes: list[float], lows: dict[int, float] | None = None, visible: int = 12) -> None:
        self.close = np.asarray(closes, dtype=np.float64)
        self.low = self.close * 0.999
        for index, low in (lows or {}).items():
            self.low[index] = low
        self.visible = visible
        self.fail_next: int = 0
        self.ohlcv_error: Exception | None = None

    def advance(self, candles: int = 1) -> None:
        self.visible = min(self.visible + candles, len(self.close))

    def _check(self) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ExchangeUnavailable("scripted: 503 from the exchange")

    @property
    def price(self) -> float:
        return float(self.close[self.visible - 1])

    async def load_markets(self) -> dict[str, Market]:
        return {SYMBOL: Market(symbol=SYMBOL, base="ETH", quote="USDT", min_notional=5.0, step_size=0.0001)}

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self._check()
        now = T0 + (self.visible - 1) * TF + TF // 2
        return Ticker(symbol=symbol, timestamp=now, bid=self.price - 0.01, ask=self.price + 0.01, last=self.price)

    async def fetch_order_book(self, symbol: str, limit: int = 100) -> OrderBook:
        self._check()
        return OrderBook(
            symbol=symbol, timestamp=None, bids=((self.price - 0.01, 1e6),), asks=((self.price + 0.01, 1e6),)
        )

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        self._check()
        if self.ohlcv_error is not None:
            raise self.ohlcv_error
        times = T0 + np.arange(self.visible, dtype=np.int64) * TF
        keep = (times >= since_ms) & (times < until_ms)
        close = self.close[: self.visible][keep]
        return Candles(times[keep], close, close * 1.001, self.low[: self.visible][keep], close, np.ones(close.size))

    async def server_time(self) -> int:
        return T0 + self.visible * TF


class AnswerLostBroker(PaperBroker):
    """Places the order, then loses the answer once (a timeout after acceptance); can also refuse sells."""

    lose_next = False
    refuse_sells = False

    async def create_order(self, request: OrderRequest) -> Order:
        if request.side == "sell" and self.refuse_sells:
            raise CircuitOpen("scripted: circuit open, nothing sent", last_error="503")
        order = await super().create_order(request)
        if self.lose_next:
            self.lose_next = False
            raise OrderOutcomeUnknown("answer lost", request.client_order_id)
        return order


def make_context(
    market: ScriptedMarket, tmp_path: Path, **risk: Any
) -> tuple[RunContext, MemorySink, AnswerLostBroker]:
    spec = TradingRunSpec.model_validate(
        {
            "market": {"symbols": [SYMBOL], "timeframe": "5m"},
            "strategy": {"name": "sma-crossover", "params": {"fast": 2, "slow": 4}},
            "risk": {"maxPositionFraction": 0.5, **risk},
            "costs": {"feeRate": 0.001, "slippagePct": 0.0},
            "session": {"duration": "2h"},
        }
    )
    sink = MemorySink()
    broker = AnswerLostBroker(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0.001, slippage_bps=0))
    ctx = RunContext(
        run_name="t",
        run_uid="abc123",
        spec=spec,
        exchange=market,  # type: ignore[arg-type]
        orders=broker,
        events=EventLog("t", [sink]),
        cache=CandleCache(tmp_path),
        has_credentials=False,
    )
    return ctx, sink, broker


def fills(sink: MemorySink) -> list[dict[str, Any]]:
    return [e.metrics for e in sink.events if e.type == "OrderFilled"]


async def step_candles(ctx: RunContext, checkpoint: dict[str, Any], market: ScriptedMarket, candles: int) -> list[Any]:
    """Reveal `candles` more candles one at a time, stepping the session after each; the outcome kinds."""
    kinds = []
    for _ in range(candles):
        market.advance()
        kinds.append((await TradingSession(ctx, checkpoint).step()).outcome.kind)
    return kinds


# 12 flat candles of history, then a rise (fast SMA crosses above slow) and a fall (crosses below).
FLAT, RISE, FALL = [100.0] * 12, [101.0, 103.0, 106.0, 108.0], [104.0, 99.0, 97.0, 96.0]


async def test_signals_become_orders_with_deterministic_client_ids(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + FALL + [96.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    result = await TradingSession(ctx, checkpoint).step()  # learns the history, trades nothing yet
    assert result.outcome.kind is OutcomeKind.RUNNING
    assert fills(sink) == []
    await step_candles(ctx, checkpoint, market, len(RISE) + len(FALL))
    sides = [(f["side"], f["client_order_id"]) for f in fills(sink)]
    assert sides == [("buy", client_order_id("abc123", 0)), ("sell", client_order_id("abc123", 1))]
    trade = checkpoint["session"]["trades"][0]
    assert trade["reason"] == "signal"
    assert trade["entry_price"] < trade["exit_price"] or trade["pnl"] < 0  # consistent sign either way
    balances = await broker.fetch_balances()
    assert balances["ETH"].total == pytest.approx(0.0, abs=1e-9)
    # Sized from maxPositionFraction of equity at the signal candle's close; it fills at the next (higher) price.
    buy = fills(sink)[0]
    assert buy["amount"] * 101.0 == pytest.approx(5_000 / 1.001, rel=1e-3)  # the first rising close
    assert buy["price"] > 101.0


async def test_a_stop_loss_exits_on_the_candle_whose_low_reaches_it(tmp_path: Path) -> None:
    closes = FLAT + RISE + [108.5, 108.7, 109.0] + [109.0] * 30
    stop_candle = len(FLAT) + len(RISE) + 1
    market = ScriptedMarket(closes, lows={stop_candle: 90.0})
    ctx, _, _ = make_context(market, tmp_path, stopLossPct=5)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    await step_candles(ctx, checkpoint, market, len(RISE) + 3)
    reasons = [t["reason"] for t in checkpoint["session"]["trades"]]
    assert reasons == ["stop_loss"]


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
    ctx, _, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    broker.lose_next = True
    outcomes = await step_candles(ctx, checkpoint, market, len(RISE) + 1)
    assert OutcomeKind.TRANSIENT in outcomes
    assert checkpoint["session"]["pending"] is None
    # exactly one order exists at the broker, and the session knows its position
    assert len(broker._orders) == 1
    assert checkpoint["session"]["positions"][SYMBOL]["amount"] > 0
    assert checkpoint["session"]["seq"] == 1


async def test_a_new_session_object_resumes_from_the_json_checkpoint(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + FALL + [96.0] * 30)
    ctx, sink, _ = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    await step_candles(ctx, checkpoint, market, len(RISE))
    restored = json.loads(json.dumps(checkpoint))  # what the cluster stores
    await step_candles(ctx, restored, market, len(FALL))
    assert [f["side"] for f in fills(sink)] == ["buy", "sell"]
    assert restored["session"]["seq"] == 2


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


async def test_a_step_replayed_after_a_crash_finds_its_order_instead_of_placing_it_again(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path)
    checkpoint: dict[str, Any] = {}
    await TradingSession(ctx, checkpoint).step()
    market.advance()
    await TradingSession(ctx, checkpoint).step()
    market.advance()  # the first rising candle has closed: the next step buys
    stored = json.loads(json.dumps(checkpoint))  # the last status that reached the cluster
    await TradingSession(ctx, checkpoint).step()  # buys; then the driver dies before writing the status
    assert len(broker._orders) == 1
    await TradingSession(ctx, stored).step()  # the restarted driver replays the step from the stored status
    assert len(broker._orders) == 1
    assert [e.type for e in sink.events].count("OrderRecovered") == 1
    assert stored["session"]["positions"][SYMBOL]["amount"] == checkpoint["session"]["positions"][SYMBOL]["amount"]


class RefusingSells(AnswerLostBroker):
    refuse = True

    async def create_order(self, request: OrderRequest) -> Order:
        if request.side == "sell" and self.refuse:
            raise InvalidOrder("scripted: the exchange refuses this sell")
        return await super().create_order(request)


async def test_a_session_never_ends_with_a_position_it_could_not_close(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 40)
    ctx, _, _ = make_context(market, tmp_path)
    broker = RefusingSells(market, {"USDT": 10_000.0, "ETH": 0.0}, PaperSettings(fee_rate=0.001, slippage_bps=0))
    ctx.orders = broker
    checkpoint: dict[str, Any] = {}
    result = await TradingSession(ctx, checkpoint).step()
    while result.outcome.kind is OutcomeKind.RUNNING:
        market.advance()
        result = await TradingSession(ctx, checkpoint).step()
    assert result.outcome.kind is OutcomeKind.TRANSIENT
    assert "positions are still open in ETH/USDT" in result.outcome.message
    broker.refuse = False
    result = await TradingSession(ctx, checkpoint).step()
    assert result.outcome.kind is OutcomeKind.PASSED
    assert checkpoint["session"]["positions"][SYMBOL]["amount"] == 0


async def test_an_open_circuit_keeps_the_order_pending_for_the_next_step(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path)

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
    assert checkpoint["session"]["pending"]["side"] == "buy"
    market.advance()
    await TradingSession(ctx, checkpoint).step()  # looked up, not found: dropped, never resent blindly
    assert checkpoint["session"]["pending"] is None
    assert [e.type for e in sink.events].count("OrderNotPlaced") == 1
    assert len(broker._orders) == 0


async def test_cancelling_a_session_closes_its_positions_first(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path)
    status = TradingRunStatus(phase="Trading", phases={"Trading": PhaseRecord(state="Running", startedAt=NOW)})
    for _ in range(4):
        status, _ = await advance(ctx, status, NOW)
        market.advance()
    assert status.checkpoint["session"]["positions"][SYMBOL]["amount"] > 0
    broker.refuse_sells = True
    status, decision = await advance(ctx, status, NOW, cancel_requested=True)
    assert decision.phase is Phase.TRADING  # the exchange refused the exit: the cancel waits for it
    assert "cancelling" in decision.message
    broker.refuse_sells = False
    status, decision = await advance(ctx, status, NOW, cancel_requested=True)
    assert decision.phase is Phase.CANCELLED
    assert status.checkpoint["session"]["positions"][SYMBOL]["amount"] == 0
    assert [t["reason"] for t in status.checkpoint["session"]["trades"]] == ["cancelled"]
    assert (await broker.fetch_balances())["ETH"].total == pytest.approx(0.0, abs=1e-9)


async def test_a_failing_session_still_closes_its_positions(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path)
    status = TradingRunStatus(phase="Trading", phases={"Trading": PhaseRecord(state="Running", startedAt=NOW)})
    for _ in range(4):
        status, _ = await advance(ctx, status, NOW)
        market.advance()
    assert status.checkpoint["session"]["positions"][SYMBOL]["amount"] > 0
    market.ohlcv_error = AuthenticationFailed("API key rejected by scripted: check the key")  # not transient
    status, decision = await advance(ctx, status, NOW)
    assert decision.phase is Phase.FAILED
    assert decision.message.endswith("; open positions closed")
    assert (await broker.fetch_balances())["ETH"].total == pytest.approx(0.0, abs=1e-9)

"""`advance`: deadlines enforced inside a step, retries of an open circuit, the status persisted mid-step."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.unit.test_session import FLAT, NOW, RISE, ScriptedMarket, make_context, trading_status
from traiding.domain.candles import Candles
from traiding.domain.statemachine import Phase
from traiding.pipeline.events import EventLog, MemorySink
from traiding.pipeline.runner import advance, phase_deadlines, start
from traiding.resource import PhaseRecord, TradingRunSpec, TradingRunStatus
from traiding_adapters.errors import CircuitOpen


def spec_with(**changes: Any) -> TradingRunSpec:
    return TradingRunSpec.model_validate(
        {"market": {"symbols": ["ETH/USDT"]}, "strategy": {"name": "sma-crossover"}, **changes}
    )


def test_deadlines_default_to_15_15_10_minutes_and_the_session_plus_a_tenth_and_margin() -> None:
    deadlines = phase_deadlines(spec_with(session={"duration": "10h"}))
    assert deadlines == {
        Phase.DATA_CHECK: timedelta(minutes=15),
        Phase.BACKTEST: timedelta(minutes=15),
        Phase.API_CHECK: timedelta(minutes=10),
        Phase.TRADING: timedelta(hours=11, minutes=15),
        Phase.REPORTING: timedelta(minutes=10),
    }
    chosen = phase_deadlines(spec_with(timeouts={"dataCheck": "2h", "trading": "1d"}))
    assert (chosen[Phase.DATA_CHECK], chosen[Phase.TRADING]) == (timedelta(hours=2), timedelta(days=1))
    assert Phase.LIQUIDATING not in chosen  # closing positions has no deadline


class HangingMarket(ScriptedMarket):
    async def fetch_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def fetch_recent_ohlcv(self, symbol: str, timeframe: str, since_ms: int, until_ms: int) -> Candles:
        return await self.fetch_ohlcv(symbol, timeframe, since_ms, until_ms)


async def test_a_data_check_that_hangs_is_cancelled_at_its_deadline_naming_phase_and_limit(tmp_path: Path) -> None:
    ctx, _, _ = make_context(HangingMarket(FLAT * 3), tmp_path)
    ctx.spec = TradingRunSpec.model_validate({**ctx.spec.model_dump(), "timeouts": {"dataCheck": "1m"}})
    started = NOW - timedelta(minutes=1) + timedelta(seconds=0.2)
    status = TradingRunStatus(phase="DataCheck", phases={"DataCheck": PhaseRecord(state="Running", startedAt=started)})
    status, decision = await asyncio.wait_for(advance(ctx, status, NOW), timeout=5)
    assert (decision.phase, decision.reason) == (Phase.FAILED, "PhaseTimeout")
    assert decision.message == "DataCheck did not finish within its deadline of 0:01:00"
    assert status.phases["DataCheck"].state == "Failed"
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert (ready.status, ready.message) == ("False", decision.message)


class CircuitOpenMarket(ScriptedMarket):
    async def fetch_ticker(self, symbol: str) -> Any:
        raise CircuitOpen("scripted circuit is open after 5 consecutive failures (another run's)", retry_in_s=3)


async def test_an_open_circuit_retries_the_data_check_instead_of_failing_it(tmp_path: Path) -> None:
    ctx, _, _ = make_context(CircuitOpenMarket(FLAT * 3), tmp_path)
    status = TradingRunStatus(phase="DataCheck", phases={"DataCheck": PhaseRecord(state="Running", startedAt=NOW)})
    status, decision = await advance(ctx, status, NOW)
    assert (decision.phase, decision.reason, decision.attempts) == (Phase.DATA_CHECK, "CircuitOpen", 1)
    assert decision.retry_after is not None


async def test_the_status_is_persisted_with_the_intent_before_the_order_is_sent(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path)
    seen: list[tuple[str, list[str], int]] = []

    async def persist(status: TradingRunStatus) -> None:
        intents = list(status.checkpoint["session"]["intents"])
        seen.append((status.phase, intents, len(broker._orders)))

    status = trading_status()
    status, _ = await advance(ctx, status, NOW, persist=persist)
    market.advance(2)
    status, _ = await advance(ctx, status, NOW, persist=persist)
    (phase, intents, orders_then), *_ = seen
    assert (phase, len(intents), orders_then) == ("Trading", 1, 0)  # written first, sent after
    assert status.checkpoint["session"]["intents"] == {} and len(broker._orders) >= 1


def test_start_says_datacheck_at_once_without_any_work_and_leaves_a_started_run_alone() -> None:
    said = MemorySink()
    started = start(spec_with(), EventLog("r", [said]), TradingRunStatus(), NOW, generation=3)
    assert (started.phase, started.startedAt, started.observedGeneration) == ("DataCheck", NOW, 3)
    record = started.phases["DataCheck"]
    assert (record.state, record.startedAt, record.results) == ("Running", NOW, {})
    assert "history" not in started.checkpoint  # no window fixed, no candle fetched: that is the DataCheck's work
    assert [(e.type, e.metrics["from"], e.metrics["to"]) for e in said.events] == [
        ("PhaseChanged", "Pending", "DataCheck")
    ]
    again = start(spec_with(), EventLog("r", [said]), started, NOW + timedelta(seconds=1), generation=3)
    assert again.phase == "DataCheck" and again.phases["DataCheck"].startedAt == NOW and len(said.events) == 1

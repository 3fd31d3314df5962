"""The kill switch on a live session (traiding.pipeline.halt): orders off the exchange, optionally flat, and no
silent resume. The scripted market and the paper broker of test_session stand in for the exchange."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_session import (
    FLAT,
    NOW,
    RISE,
    SYMBOL,
    T0,
    AnswerLostBroker,
    ScriptedMarket,
    make_context,
    trade_into_a_position,
)
from traiding.domain.statemachine import Phase
from traiding.pipeline.context import RunContext
from traiding.pipeline.events import MemorySink
from traiding.pipeline.halt import HALT_KEY, HaltOrder, halt_step
from traiding.pipeline.order_lifecycle import Intent
from traiding.pipeline.runner import advance
from traiding.resource import TradingRunSpec, TradingRunStatus

SWITCH = HaltOrder(source="ConfigMap trading/traiding-kill-switch", reason="exchange incident")


def live(ctx: RunContext) -> RunContext:
    spec = ctx.spec.model_dump()
    spec["mode"] = "live"
    spec["exchange"] = {"credentialsSecretRef": {"name": "keys"}}
    ctx.spec = TradingRunSpec.model_validate(spec)
    return ctx


async def holding_with_stop(tmp_path: Path) -> tuple[RunContext, ScriptedMarket, MemorySink, AnswerLostBroker, Any]:
    market = ScriptedMarket(FLAT + RISE + [108.0] + [110.0, 112.0, 114.0, 90.0] + [90.0] * 30)
    ctx, sink, broker = make_context(market, tmp_path, stopLossPct=5)
    status = await trade_into_a_position(live(ctx), market)
    assert status.checkpoint["session"]["positions"][SYMBOL]["stop_order"]
    return ctx, market, sink, broker, status


def open_orders(broker: AnswerLostBroker) -> list[str]:
    return [o.client_order_id or "" for o in broker._orders.values() if o.status == "open"]


def held(status: TradingRunStatus) -> float:
    return float(status.checkpoint["session"]["positions"][SYMBOL]["amount"])


async def test_setting_the_switch_cancels_the_stops_keeps_the_positions_and_trades_nothing_more(tmp_path: Path) -> None:
    ctx, market, sink, broker, status = await holding_with_stop(tmp_path)
    amount, orders_before = held(status), len(broker._orders)
    result = await halt_step(ctx, status, NOW, order=SWITCH, resume="")
    assert result.decision is not None and (result.decision.phase, result.decision.reason) == (Phase.TRADING, "Halted")
    status = result.status
    assert open_orders(broker) == []  # the resting stop is off the exchange
    assert status.checkpoint["session"]["positions"][SYMBOL]["stop_order"] is None
    assert held(status) == amount  # no flatten: the position stays
    halted = {c.type: c for c in status.conditions}["Halted"]
    assert (halted.status, halted.reason) == ("True", "KillSwitch") and "exchange incident" in halted.message
    assert [e.level for e in sink.events if e.type == "Halted"] == ["error"]
    for _ in range(6):  # the market falls through where the stop was: a halted run sends nothing
        market.advance()
        result = await halt_step(ctx, status, NOW, order=SWITCH, resume="")
        status = result.status
    assert len(broker._orders) == orders_before and held(status) == amount
    assert [e.type for e in sink.events].count("Halted") == 1  # said once, not at every step


async def test_a_switch_that_flattens_sells_every_position_through_a_written_intent(tmp_path: Path) -> None:
    ctx, _, _, broker, status = await holding_with_stop(tmp_path)
    written: list[dict[str, Any]] = []

    async def persist(current: TradingRunStatus) -> None:
        written.append(dict(current.checkpoint["session"]["intents"]))

    result = await halt_step(ctx, status, NOW, order=HaltOrder("cluster", flatten=True), resume="", persist=persist)
    assert held(result.status) == 0 and open_orders(broker) == []
    assert [t["reason"] for t in result.status.checkpoint["session"]["trades"]] == ["kill_switch"]
    assert any(written), "the sell's intent was persisted before it was sent"
    assert (await broker.fetch_balances())["ETH"].total == pytest.approx(0.0, abs=1e-9)


async def test_clearing_the_switch_does_not_resume_until_a_person_gives_a_new_resume_value(tmp_path: Path) -> None:
    ctx, market, sink, broker, status = await holding_with_stop(tmp_path)
    status = (await halt_step(ctx, status, NOW, order=SWITCH, resume="monday")).status
    orders = len(broker._orders)
    for resume in ("", "monday"):  # cleared, and the resume value that was there before the halt: still halted
        market.advance()
        result = await halt_step(ctx, status, NOW, order=None, resume=resume)
        assert result.decision is not None and result.decision.reason == "Halted"
        assert "the switch is clear" in result.decision.message
        status = result.status
    result = await halt_step(ctx, status, NOW, order=SWITCH, resume="tuesday")  # set again: a resume waits
    assert result.decision is not None and HALT_KEY in result.status.checkpoint
    status = result.status
    assert len(broker._orders) == orders

    result = await halt_step(ctx, status, NOW, order=None, resume="tuesday")
    assert result.decision is None and HALT_KEY not in result.status.checkpoint
    assert {c.type: c for c in result.status.conditions}["Halted"].status == "False"
    assert [e.type for e in sink.events][-1] == "Resumed"
    status, decision = await advance(ctx, result.status, NOW)  # the normal step: the stop goes back on
    assert decision.phase is Phase.TRADING
    assert status.checkpoint["session"]["positions"][SYMBOL]["stop_order"] in open_orders(broker)


async def test_a_liquidating_run_stops_selling_while_halted_unless_the_switch_flattens(tmp_path: Path) -> None:
    ctx, _, _, broker, status = await holding_with_stop(tmp_path)
    status, decision = await advance(ctx, status, NOW, cancel_requested=True)
    assert decision.phase is Phase.LIQUIDATING
    result = await halt_step(ctx, status, NOW, order=SWITCH, resume="")
    assert result.decision is not None and result.decision.phase is Phase.LIQUIDATING
    assert held(result.status) > 0 and open_orders(broker) == []
    result = await halt_step(ctx, result.status, NOW, order=HaltOrder("cluster", flatten=True), resume="")
    assert held(result.status) == 0
    # Cancelled, with the switch clear: the halt ends and the liquidation goes on to its end.
    result = await halt_step(ctx, result.status, NOW, order=None, resume="", stopping=True)
    assert result.decision is None
    status, decision = await advance(ctx, result.status, NOW, cancel_requested=True)
    assert (decision.phase, decision.reason) == (Phase.CANCELLED, "Cancelled")


async def test_an_order_of_unknown_outcome_is_reconciled_before_a_flattening_halt_sells(tmp_path: Path) -> None:
    ctx, _, _, broker, status = await holding_with_stop(tmp_path)
    # An entry that reached the exchange while its answer was lost: written as an intent, never resolved.
    lost = Intent("lost-entry", SYMBOL, "buy", "market", 1.0, T0, "entry", written_ms=0)
    await broker.create_order(lost.request())
    status.checkpoint["session"]["paper"] = broker.snapshot()  # the paper account is the run's exchange
    status.checkpoint["session"]["intents"] = {lost.client_order_id: asdict(lost)}
    amount = held(status)
    result = await halt_step(ctx, status, NOW, order=HaltOrder("cluster", flatten=True), resume="")
    session = result.status.checkpoint["session"]
    assert session["intents"] == {} and lost.client_order_id in session["orders"]  # found and booked, not resent
    assert [o.client_order_id for o in broker._orders.values()].count(lost.client_order_id) == 1
    [trade] = session["trades"]
    assert trade["amount"] == pytest.approx(amount + 1.0, rel=1e-3)  # the flattening sold it too
    assert held(result.status) == 0


async def test_a_dry_run_is_not_halted(tmp_path: Path) -> None:
    market = ScriptedMarket(FLAT + RISE + [108.0] * 30)
    ctx, _, broker = make_context(market, tmp_path, stopLossPct=5)
    status = await trade_into_a_position(ctx, market)
    result = await halt_step(ctx, status, NOW, order=SWITCH, resume="")
    assert result.decision is None and HALT_KEY not in result.status.checkpoint
    assert open_orders(broker)  # the paper stop stays

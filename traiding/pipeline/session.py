"""The Trading phase: the strategy on live candles, orders through the order API, risk limits enforced.

The session is a sequence of `step` calls, each one processing the candles that closed since the
last one and returning the new checkpoint. The checkpoint is plain JSON kept by the caller (the
run's status in the cluster, a file locally), so a restarted operator continues where it was:
- an order's client order id comes from the run's uid and a sequence number that is saved
  *before* the order is sent, so a resend after a crash reuses the id and cannot double-trade;
- an order whose answer was lost is resolved by looking its client order id up, never resent blindly.

Semantics match the backtester's: a signal on a candle's close acts at the next price (the market
order goes out as soon as the candle has closed); the stop loss is checked against each closed
candle's low and exits at the market. Session time is market time (candle open times), so a
replayed market at 300x runs a 12h session in 144 s and a real exchange in 12 h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from traiding.domain import risk
from traiding.domain.candles import Candles
from traiding.domain.statemachine import Outcome, OutcomeKind, Phase
from traiding.domain.strategies import Strategy, get_strategy
from traiding.domain.timeframes import duration_ms
from traiding.pipeline.context import PhaseResult, RunContext, outcome_of_error
from traiding.pipeline.history import market_now_ms
from traiding_adapters.client_ids import client_order_id
from traiding_adapters.errors import CircuitOpen, ExchangeLayerError, OrderNotFound, OrderOutcomeUnknown
from traiding_adapters.exchange import Market, Order, OrderRequest
from traiding_adapters.paper import PaperBroker

MAX_POINTS = 600  # equity/price points kept in the checkpoint for the report
MAX_TRADES = 500  # closed trades kept in the checkpoint (the event log has all of them)
DEGRADED_STEPS = 3  # after a failed step, this many steps open no new positions


class PositionsStillOpen(ExchangeLayerError):
    """The session must end flat; an exit the exchange refused is retried (bounded by the state machine)."""

    transient = True


@dataclass
class Position:
    amount: float = 0.0  # base currency held by this run (after fees charged in the base currency)
    entry_price: float = 0.0  # volume-weighted fill price
    entry_time: int = 0
    stop: float | None = None
    cost: float = 0.0  # quote currency spent on `amount`, fees included: the basis of the trade's PnL


def limits_of(ctx: RunContext) -> risk.RiskLimits:
    r = ctx.spec.risk
    return risk.RiskLimits(r.maxPositionFraction, r.stopLossPct, r.dailyLossLimitPct, r.maxDrawdownPct)


def strategy_of(ctx: RunContext) -> Strategy[Any]:
    return get_strategy(ctx.spec.strategy.name, ctx.spec.strategy.params)


def _append_capped(points: list[Any], item: Any, cap: int) -> None:
    points.append(item)
    if len(points) > cap:
        del points[1::2]  # thin out evenly, keeping the first point; the curve keeps its shape


class TradingSession:
    def __init__(self, ctx: RunContext, checkpoint: dict[str, Any]) -> None:
        self.ctx = ctx
        self.cp: dict[str, Any] = checkpoint.setdefault("session", {})
        self.limits = limits_of(ctx)
        self.strategy = strategy_of(ctx)
        self.tf = ctx.timeframe_ms
        self.window = max(self.strategy.warmup * 2, self.strategy.warmup + 3, 10)
        self.markets: dict[str, Market] = {}

    # --- checkpoint accessors -------------------------------------------------------------------
    def _position(self, symbol: str) -> Position:
        raw = self.cp["positions"].get(symbol)
        return Position(**raw) if raw else Position()

    def _set_position(self, symbol: str, position: Position) -> None:
        self.cp["positions"][symbol] = position.__dict__.copy()

    def _risk(self) -> risk.RiskState:
        return risk.RiskState.from_dict(self.cp["risk"])

    # --- the step -------------------------------------------------------------------------------
    async def step(self) -> PhaseResult:
        try:
            return await self._step()
        finally:
            self._save_paper_account()

    def _save_paper_account(self) -> None:
        if isinstance(self.ctx.orders, PaperBroker):
            # The paper account is part of the run's state: a restarted driver restores it from here.
            self.cp["paper"] = self.ctx.orders.snapshot()

    async def _step(self) -> PhaseResult:
        try:
            if not self.markets:
                self.markets = await self.ctx.exchange.load_markets()
            if "started_ms" not in self.cp:
                await self._start()
            await self._resolve_pending()
            # A kill switch whose liquidation failed is retried at once, not when the next candle closes.
            done = self._risk().killed or await self._process_new_candles()
            if done:
                await self._close_all("kill_switch" if self._risk().killed else "session_end")
                if self._open_symbols():
                    raise PositionsStillOpen(
                        f"the session is over but positions are still open in {', '.join(self._open_symbols())}; "
                        "retrying the exit"
                    )
                # The closing fills (fees, slippage) are part of the result: record the realised equity.
                last_time = max(int(t) for t in self.cp["last_closed"].values()) + self.tf
                self.cp["equity"].append([last_time, self._equity()])
            self.cp["degraded_steps"] = max(0, int(self.cp.get("degraded_steps", 0)) - 1)
        except ExchangeLayerError as error:
            self.cp["degraded_steps"] = DEGRADED_STEPS
            self.cp["errors"] = int(self.cp.get("errors", 0)) + 1
            self.ctx.events.emit(
                "Trading", "ExchangeError", str(error), level="warning", metrics={"errors": self.cp["errors"]}
            )
            if isinstance(error, CircuitOpen | OrderOutcomeUnknown):
                # Mid-session an open circuit means "degraded", not "over": open positions still need managing,
                # so the state machine retries (with backoff, bounded) instead of abandoning them. A lost order
                # answer is resolved on the next step by looking the order up.
                outcome = Outcome(Phase.TRADING, OutcomeKind.TRANSIENT, type(error).__name__, str(error))
                return PhaseResult(outcome, self._results())
            return PhaseResult(outcome_of_error(Phase.TRADING, error).outcome, self._results())
        if done:
            reason = self._risk().kill_reason if self._risk().killed else "session finished"
            return PhaseResult(Outcome(Phase.TRADING, OutcomeKind.PASSED, "SessionEnded", reason), self._results())
        return PhaseResult(Outcome(Phase.TRADING, OutcomeKind.RUNNING, "Trading", self._progress()), self._results())

    async def flatten(self) -> PhaseResult | None:
        if "started_ms" not in self.cp:
            return None
        try:
            if not self.markets:
                self.markets = await self.ctx.exchange.load_markets()
            await self._resolve_pending()
            await self._close_all("cancelled")
            if self._open_symbols():
                raise PositionsStillOpen(f"positions still open in {', '.join(self._open_symbols())}")
        except ExchangeLayerError as error:
            outcome = Outcome(Phase.TRADING, OutcomeKind.TRANSIENT, type(error).__name__, f"cancelling: {error}")
            return PhaseResult(outcome, self._results())
        finally:
            self._save_paper_account()
        return None

    def _open_symbols(self) -> list[str]:
        return [symbol for symbol, p in self.cp["positions"].items() if p["amount"] > 0]

    def _degraded(self) -> str | None:
        """Why the exchange counts as degraded (no new positions), or None."""
        if int(self.cp.get("degraded_steps", 0)) > 0:
            return "exchange degraded (recent errors): no new positions until it recovers"
        circuit = self.ctx.exchange.circuit_state
        if circuit != "closed":
            return f"exchange degraded (circuit {circuit}): no new positions until it recovers"
        return None

    async def _start(self) -> None:
        equity = float(self.ctx.spec.capital.initial)
        # The session starts with the candle forming now; its duration counts whole candles from there.
        now = await market_now_ms(self.ctx) // self.tf * self.tf
        self.cp.update(
            started_ms=now,
            ends_ms=now + duration_ms(self.ctx.spec.session.duration),
            initial_equity=equity,
            cash=equity,
            positions={},
            last_closed={},
            seq=0,
            pending=None,
            trades=[],
            equity=[[now, equity]],
            prices={s: [] for s in self.ctx.spec.market.symbols},
            risk=risk.RiskState.start(equity, now).to_dict(),
            degraded_steps=0,
            errors=0,
            last_prices={},
        )
        self.ctx.events.emit(
            "Trading",
            "SessionStarted",
            f"{self.ctx.spec.mode} session of {self.ctx.spec.session.duration} started with equity {equity:.2f}",
            metrics={"equity": equity},
        )

    async def _closed_candles(self, symbol: str) -> Candles:
        last = self.cp["last_closed"].get(symbol)
        since = (self.cp["started_ms"] - self.window * self.tf) if last is None else last - self.window * self.tf
        candles = await self.ctx.exchange.fetch_ohlcv(symbol, self.ctx.timeframe, since, since + 1000 * self.tf)
        # The newest candle is still forming: it is acted on once the next one exists.
        return candles.slice(0, max(len(candles) - 1, 0))

    async def _process_new_candles(self) -> bool:
        for symbol in self.ctx.spec.market.symbols:
            candles = await self._closed_candles(symbol)
            if len(candles) == 0:
                continue
            last = self.cp["last_closed"].get(symbol)
            new_from = 0 if last is None else int(np.searchsorted(candles.time, last, side="right"))
            if last is None:
                # The first step only learns the history; trading starts with the next closed candle.
                new_from = len(candles)
                self.cp["last_closed"][symbol] = int(candles.time[-1])
                self.cp["last_prices"][symbol] = float(candles.close[-1])
            for index in range(new_from, len(candles)):
                await self._on_candle(symbol, candles, index)
                if self._risk().killed:
                    return True
        ends = self.cp["ends_ms"]
        return all(self.cp["last_closed"].get(s, -math.inf) + self.tf >= ends for s in self.ctx.spec.market.symbols)

    async def _on_candle(self, symbol: str, candles: Candles, index: int) -> None:
        time = int(candles.time[index])
        close = float(candles.close[index])
        self.cp["last_closed"][symbol] = time
        self.cp["last_prices"][symbol] = close
        _append_capped(self.cp["prices"].setdefault(symbol, []), [time, close], MAX_POINTS)
        if time + self.tf > self.cp["ends_ms"]:
            return
        window = candles.slice(max(0, index + 1 - self.window), index + 1)
        signals = self.strategy.signals(window)
        position = self._position(symbol)
        if position.amount > 0:
            if position.stop is not None and float(candles.low[index]) <= position.stop:
                await self._sell(symbol, position, "stop_loss", time)
            elif bool(signals.exits[-1]):
                await self._sell(symbol, position, "signal", time)
        elif bool(signals.entries[-1]):
            await self._buy(symbol, time)
        equity = self._equity()
        _append_capped(self.cp["equity"], [time + self.tf, equity], MAX_POINTS)
        state = risk.observe_equity(self.limits, self._risk(), equity, time + self.tf)
        if state.killed and not self._risk().killed:
            self.ctx.events.emit("Trading", "KillSwitch", state.kill_reason, level="error", metrics={"equity": equity})
            self.cp["risk"] = state.to_dict()
            await self._close_all("kill_switch")
        self.cp["risk"] = state.to_dict()

    # --- orders ---------------------------------------------------------------------------------
    def _next_client_id(self) -> str:
        sequence = int(self.cp["seq"])
        self.cp["seq"] = sequence + 1
        return client_order_id(self.ctx.run_uid, sequence)

    async def _buy(self, symbol: str, time: int) -> None:
        equity = self._equity()
        blocked = risk.entry_block_reason(self.limits, self._risk(), equity)
        blocked = blocked or self._degraded()
        if blocked:
            self.ctx.events.emit("Trading", "EntrySkipped", f"{symbol}: {blocked}", level="warning")
            return
        market = self.markets[symbol]
        balances = await self.ctx.orders.fetch_balances()
        free = balances[market.quote].free if market.quote in balances else 0.0
        # The run spends its own cash only, and never more than the account has free.
        budget = risk.position_budget(self.limits, equity, min(free, float(self.cp["cash"])))
        price = float(self.cp["last_prices"][symbol])
        fee = self.ctx.spec.costs.feeRate
        amount = market.round_amount(budget / (price * (1 + fee) * (1 + self.ctx.spec.costs.slippagePct / 100)))
        problems = market.violations(amount, price)
        if amount <= 0 or problems:
            reason = "; ".join(problems) or "no free capital"
            self.ctx.events.emit("Trading", "EntrySkipped", f"{symbol}: {reason}", level="warning")
            return
        order = await self._send(
            OrderRequest(symbol=symbol, side="buy", type="market", amount=amount, client_order_id="")
        )
        if order is not None and order.filled > 0:
            self._apply_fill(symbol, order, time, "entry")

    async def _sell(self, symbol: str, position: Position, reason: str, time: int) -> None:
        market = self.markets[symbol]
        balances = await self.ctx.orders.fetch_balances()
        free = balances[market.base].free if market.base in balances else 0.0
        # Never sell more than the account holds: fees booked elsewhere (another currency, an order read back
        # without its fills) must not turn every exit into an "insufficient balance" rejection.
        amount = market.round_amount(min(position.amount, free))
        if amount <= 0:
            self._set_position(symbol, Position())
            return
        order = await self._send(
            OrderRequest(symbol=symbol, side="sell", type="market", amount=amount, client_order_id=""), reason
        )
        if order is not None and order.filled > 0:
            self._apply_fill(symbol, order, time, reason)

    async def _send(self, request: OrderRequest, reason: str = "entry") -> Order | None:
        request = request.model_copy(update={"client_order_id": self._next_client_id()})
        # Saved before sending: a crash from here on resolves the order by this id, never resends blindly.
        self.cp["pending"] = {**request.model_dump(), "reason": reason}
        # The sequence number reaches the stored status only after this step. A driver that crashed after
        # sending replays the step with the same id: look it up first, so the replay finds the order instead
        # of placing it again (an exchange rejects a reused id only while that order is open).
        try:
            existing = await self.ctx.orders.fetch_order(request.symbol, client_order_id=request.client_order_id)
        except OrderNotFound:
            existing = None
        if existing is not None:
            self.cp["pending"] = None
            self.ctx.events.emit(
                "Trading", "OrderRecovered", f"order {request.client_order_id} was placed before a restart"
            )
            return existing
        try:
            order = await self.ctx.orders.create_order(request)
        except ExchangeLayerError as error:
            if error.transient or isinstance(error, OrderOutcomeUnknown | CircuitOpen):
                raise  # stays pending: the next step looks the order up by its client order id
            self.cp["pending"] = None
            self.ctx.events.emit(
                "Trading", "OrderRejected", f"{request.side} {request.symbol}: {error}", level="warning"
            )
            return None
        self.cp["pending"] = None
        return order

    async def _resolve_pending(self) -> None:
        pending = self.cp.get("pending")
        if not pending:
            return
        try:
            order = await self.ctx.orders.fetch_order(pending["symbol"], client_order_id=pending["client_order_id"])
        except OrderNotFound:
            self.ctx.events.emit(
                "Trading",
                "OrderNotPlaced",
                f"order {pending['client_order_id']} never reached the exchange; the signal is dropped",
                level="warning",
            )
            self.cp["pending"] = None
            return
        self.cp["pending"] = None
        if order.filled > 0:
            self._apply_fill(order.symbol, order, int(self.cp["last_closed"].get(order.symbol, 0)), pending["reason"])

    def _apply_fill(self, symbol: str, order: Order, time: int, reason: str) -> None:
        """Book a fill into the run's own cash and position (the account may hold other funds too)."""
        market = self.markets[symbol]
        price = order.average or order.price or float(self.cp["last_prices"][symbol])
        fee_quote = order.fee.cost if order.fee and order.fee.currency == market.quote else 0.0
        fee_base = order.fee.cost if order.fee and order.fee.currency == market.base else 0.0
        position = self._position(symbol)
        if order.side == "buy":
            received = order.filled - fee_base
            spent = order.cost + fee_quote
            self.cp["cash"] = float(self.cp["cash"]) - spent
            amount = position.amount + received
            entry = (position.amount * position.entry_price + order.filled * price) / (position.amount + order.filled)
            stop = risk.stop_price(self.limits, entry)
            self._set_position(symbol, Position(amount, entry, time, stop, position.cost + spent))
            message = f"bought {order.filled:g} {symbol} at {price:.8g} ({order.client_order_id})"
        else:
            proceeds = order.cost - fee_quote
            self.cp["cash"] = float(self.cp["cash"]) + proceeds
            sold = min(order.filled + fee_base, position.amount)
            basis = position.cost * (sold / position.amount) if position.amount > 0 else 0.0
            pnl = proceeds - basis
            trade = {
                "symbol": symbol,
                "entry_time": position.entry_time,
                "exit_time": time,
                "entry_price": position.entry_price,
                "exit_price": price,
                "amount": order.filled,
                "pnl": pnl,
                "reason": reason,
            }
            _append_capped(self.cp["trades"], trade, MAX_TRADES)
            self.cp["closed_trades"] = int(self.cp.get("closed_trades", 0)) + 1
            self.cp["wins"] = int(self.cp.get("wins", 0)) + (1 if pnl > 0 else 0)
            self.cp["losses"] = int(self.cp.get("losses", 0)) + (1 if pnl < 0 else 0)
            remaining = position.amount - sold
            if market.round_amount(remaining) <= 0:
                self._set_position(symbol, Position())
            else:
                self._set_position(
                    symbol,
                    Position(
                        remaining, position.entry_price, position.entry_time, position.stop, position.cost - basis
                    ),
                )
            message = f"sold {order.filled:g} {symbol} at {price:.8g} ({reason}), pnl {pnl:+.2f}"
        self.ctx.events.emit(
            "Trading",
            "OrderFilled",
            message,
            metrics={
                "symbol": symbol,
                "side": order.side,
                "price": price,
                "amount": order.filled,
                "status": order.status,
                "client_order_id": order.client_order_id,
            },
        )

    async def _close_all(self, reason: str) -> None:
        for symbol in self.ctx.spec.market.symbols:
            position = self._position(symbol)
            if position.amount > 0:
                await self._sell(symbol, position, reason, int(self.cp["last_closed"].get(symbol, 0)))

    # --- numbers --------------------------------------------------------------------------------
    def _equity(self) -> float:
        """The run's equity: its cash plus its positions at the last closed prices."""
        prices = self.cp["last_prices"]
        held = sum(
            float(p["amount"]) * float(prices.get(symbol, p["entry_price"]))
            for symbol, p in self.cp["positions"].items()
        )
        return float(self.cp["cash"]) + held

    def _progress_pct(self) -> float:
        done = max(self.cp["last_closed"].get(s, self.cp["started_ms"]) for s in self.ctx.spec.market.symbols)
        total = max(self.cp["ends_ms"] - self.cp["started_ms"], 1)
        return float(min(100.0, max(0.0, (done + self.tf - self.cp["started_ms"]) / total * 100)))

    def _progress(self) -> str:
        equity = self.cp["equity"][-1][1] if self.cp["equity"] else 0.0
        return (
            f"{self._progress_pct():.0f}% of the session, equity {equity:.2f}, {self.cp.get('closed_trades', 0)} trades"
        )

    def _results(self) -> dict[str, Any]:
        if "started_ms" not in self.cp:
            return {}
        equity = self.cp["equity"][-1][1] if self.cp["equity"] else self.cp["initial_equity"]
        return {
            "equity": equity,
            "trades": int(self.cp.get("closed_trades", 0)),
            "openPositions": sum(1 for p in self.cp["positions"].values() if p["amount"] > 0),
            "killSwitch": self._risk().killed,
            "errors": int(self.cp.get("errors", 0)),
            "progressPct": round(self._progress_pct(), 1),
        }


async def trading_step(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult:
    return await TradingSession(ctx, checkpoint).step()


async def flatten_session(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult | None:
    """Close the session's positions (a cancelled run); None once flat, else the transient reason to retry."""
    return await TradingSession(ctx, checkpoint).flatten()

"""The Trading and Liquidating phases: the strategy on live candles, and leaving the market flat.

The session is a sequence of `step` calls, each one processing the candles that closed since the last one.
Everything lives in the checkpoint (plain JSON kept by the caller: the run's status in the cluster, a file
locally), so a restarted operator continues where it was. Orders, fills and the books are the order life
cycle's (`order_lifecycle`): every step first reconciles the orders whose outcome is not known yet, then
books the protective stops that filled, then acts on the candles.

Semantics match the backtester's: a signal on a candle's close acts at the next price (the market order goes
out as soon as the candle has closed); the stop loss rests on the exchange where it can, and is checked
against each closed candle's low too. After downtime only the newest closed candle is acted on: signals of
the candles that closed meanwhile are logged as skipped, never sent at today's price. "Meanwhile" is measured
against the driver's polling cadence: on a real exchange a step sees one new candle, so only the newest one
counts; a replay so fast that a few candles close between two polls (3000x: ten 5m candles a second) has its
signals of the last few polling intervals acted on. Session time is market time (candle open times), so a
replayed market at 300x runs a 12h session in 144 s and a real one in 12 h.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from traiding.domain import risk
from traiding.domain.candles import Candles
from traiding.domain.statemachine import Outcome, OutcomeKind, Phase
from traiding.domain.strategies import Strategy, get_strategy
from traiding.domain.timeframes import duration_ms
from traiding.pipeline.context import Flush, PhaseResult, RunContext, outcome_of_error
from traiding.pipeline.history import market_now_ms
from traiding.pipeline.order_lifecycle import OrderLifecycle, OrderMismatch, wall_clock_ms
from traiding.pipeline.price_series import MAX_POINTS, append_capped
from traiding.pipeline.wiring import market_speed, poll_seconds
from traiding_adapters.errors import CircuitOpen, ExchangeLayerError, OrderOutcomeUnknown
from traiding_adapters.exchange import Market
from traiding_adapters.paper import PaperBroker

DEGRADED_STEPS = 3  # after a failed step, this many steps open no new positions
FRESH_POLLS = 4  # candles that closed within this many polling intervals of the newest one are still acted on


async def _no_flush() -> None:
    return None


def limits_of(ctx: RunContext) -> risk.RiskLimits:
    r = ctx.spec.risk
    return risk.RiskLimits(r.maxPositionFraction, r.stopLossPct, r.dailyLossLimitPct, r.maxDrawdownPct)


def strategy_of(ctx: RunContext) -> Strategy[Any]:
    return get_strategy(ctx.spec.strategy.name, ctx.spec.strategy.params)


def holds_positions(checkpoint: dict[str, Any]) -> bool:
    """Whether the session holds positions, resting stops or orders whose outcome is not known yet."""
    session = checkpoint.get("session", {})
    if session.get("intents"):
        return True
    return any(p.get("amount", 0) > 0 or p.get("stop_order") for p in session.get("positions", {}).values())


def describe_holdings(checkpoint: dict[str, Any]) -> str:
    """What the session holds, in words: positions with their stops' client order ids, unresolved orders."""
    session = checkpoint.get("session", {})
    parts = [
        f"{p['amount']:g} {symbol}" + (f" (stop {p['stop_order']})" if p.get("stop_order") else "")
        for symbol, p in session.get("positions", {}).items()
        if p.get("amount", 0) > 0 or p.get("stop_order")
    ]
    parts += [f"order {coid} of unknown outcome" for coid in session.get("intents", {})]
    return ", ".join(parts) or "nothing"


class TradingSession:
    def __init__(
        self,
        ctx: RunContext,
        checkpoint: dict[str, Any],
        flush: Flush = _no_flush,
        *,
        wall_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.ctx = ctx
        self.wall_ms = wall_ms
        self.cp: dict[str, Any] = checkpoint.setdefault("session", {})
        self.limits = limits_of(ctx)
        self.strategy = strategy_of(ctx)
        self.tf = ctx.timeframe_ms
        self.window = max(self.strategy.warmup * 2, self.strategy.warmup + 3, 10)
        # A candle this much older than the newest closed one closed while no driver looked: its signal is stale.
        # At wall speed a step takes milliseconds of a candle's minutes and polls at least once per candle: only
        # the newest closed candle is fresh. A replay's candle lasts fractions of a wall second, so a slow step
        # or a replay faster than the polls closes several per step: they stay fresh within FRESH_POLLS polls.
        speed = market_speed(ctx.spec)
        cadence_ms = poll_seconds(ctx.spec) * speed * 1000
        wall_speed = speed <= 1 and cadence_ms <= self.tf
        self.fresh_ms = self.tf if wall_speed else max(self.tf, int(FRESH_POLLS * cadence_ms))
        self._flush_status = flush
        self.markets: dict[str, Market] = {}
        self._books: OrderLifecycle | None = None

    @property
    def books(self) -> OrderLifecycle:
        # The session is prepared at the start of each step.
        assert self._books is not None  # nosec B101  # narrows a type; not an input check
        return self._books

    def _risk(self) -> risk.RiskState:
        return risk.RiskState.from_dict(self.cp["risk"])

    async def _flush(self) -> None:
        self._save_paper_account()
        await self._flush_status()

    def _save_paper_account(self) -> None:
        if isinstance(self.ctx.orders, PaperBroker):
            # The paper account is part of the run's state: a restarted driver restores it from here.
            self.cp["paper"] = self.ctx.orders.snapshot()

    async def _prepare(self) -> None:
        prices = self.cp.pop("prices", None)
        if prices is not None:  # checkpointed before the price series left it: keep what the summary needs
            self.cp.setdefault("first_prices", {s: series[0][1] for s, series in prices.items() if series})
        if isinstance(self.ctx.orders, PaperBroker) and "paper" in self.cp:
            # Every step starts from the stored account: a step redone after a crash or a conflict must not see
            # orders of the attempt that was never written.
            self.ctx.orders.restore(self.cp["paper"])
        if not self.markets:
            self.markets = await self.ctx.exchange.load_markets()
        self._books = OrderLifecycle(self.ctx, self.cp, self.markets, self._flush, wall_ms=self.wall_ms)

    # --- the Trading step -----------------------------------------------------------------------------------
    async def step(self) -> PhaseResult:
        try:
            return await self._step()
        finally:
            self._save_paper_account()

    async def _step(self) -> PhaseResult:
        done = False
        try:
            await self._prepare()
            if "started_ms" not in self.cp:
                await self._start()
            waiting = await self.books.reconcile()
            if waiting:
                return self._running("WaitingForOrders", waiting)
            await self.books.refresh_stops()
            await self.books.retry_pending_exits()
            # A kill switch whose liquidation failed is retried at once, not when the next candle closes.
            done = self._risk().killed or await self._process_new_candles()
            if done:
                await self.books.close_all("kill_switch" if self._risk().killed else "session_end")
                # The closing fills (fees, slippage) are part of the result: record the realised equity.
                last_time = max(int(t) for t in self.cp["last_closed"].values()) + self.tf
                self.cp["equity"].append([last_time, self._equity()])
            else:
                for symbol in self.books.open_symbols():
                    await self.books.ensure_stop(symbol)
            self.books.raise_unresolved()  # every other symbol has had its step: now say what failed
            self.cp["degraded_steps"] = max(0, int(self.cp.get("degraded_steps", 0)) - 1)
        except OrderMismatch as error:
            self.ctx.events.emit("Trading", "OrderMismatch", str(error), level="error")
            return PhaseResult(Outcome(Phase.TRADING, OutcomeKind.FAILED, "OrderMismatch", str(error)), self._results())
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
        return self._running("Trading", self._progress())

    def _running(self, reason: str, message: str) -> PhaseResult:
        return PhaseResult(Outcome(Phase.TRADING, OutcomeKind.RUNNING, reason, message), self._results())

    # --- the Liquidating step -------------------------------------------------------------------------------
    async def liquidate(self) -> PhaseResult:
        """Cancel the session's stops and close its positions; PASSED once flat, else why not (retried)."""
        try:
            await self._prepare()
            if "started_ms" not in self.cp:
                return self._liquidation(OutcomeKind.PASSED, "Flat", "no session was started")
            waiting = await self.books.reconcile()
            if waiting:
                return self._liquidation(OutcomeKind.RUNNING, "WaitingForOrders", waiting)
            await self.books.refresh_stops()
            await self.books.close_all("liquidation")
            self.books.raise_unresolved()
        except ExchangeLayerError as error:  # an order mismatch too: the positions in the books still get closed
            return self._refused(f"{type(error).__name__}: {error}")
        finally:
            self._save_paper_account()
        if self.books.holds_anything():
            return self._refused(f"still open: {describe_holdings({'session': self.cp})}")
        last_time = max((int(t) for t in self.cp.get("last_closed", {}).values()), default=0) + self.tf
        self.cp["equity"].append([last_time, self._equity()])
        return self._liquidation(OutcomeKind.PASSED, "Liquidated", "open positions closed")

    # --- a kill switch's halt ------------------------------------------------------------------------------
    async def halt(self, *, flatten: bool) -> str:
        """Take the run's orders off the exchange (its protective stops), and with `flatten` close its positions
        once every written intent is resolved; what the run holds now, in words. Idempotent: a halted run's
        later steps only check again (no call at all once nothing rests on the exchange)."""
        try:
            await self._prepare()
            if "started_ms" not in self.cp:
                return "no session was started"
            waiting = await self.books.reconcile()  # read only: an order of unknown outcome is never forgotten
            await self.books.refresh_stops()
            for symbol in list(self.cp["positions"]):
                await self.books.cancel_stop(symbol)
            if waiting:
                return f"stops cancelled; {waiting}"
            if flatten:
                await self.books.close_all("kill_switch")
        except ExchangeLayerError as error:  # retried at the next halted step
            why = f"{type(error).__name__}: {error}"
            self.ctx.events.emit("Trading", "HaltIncomplete", f"the halt did not complete: {why}", level="warning")
            return f"the halt did not complete ({why}); retrying"
        finally:
            self._save_paper_account()
        return f"no open orders; holding {describe_holdings({'session': self.cp})}"

    def _refused(self, why: str) -> PhaseResult:
        self.ctx.events.emit("Liquidating", "ExitRefused", f"the exit did not complete: {why}", level="warning")
        return self._liquidation(OutcomeKind.TRANSIENT, "ExitRefused", f"the exit did not complete: {why}")

    def _liquidation(self, kind: OutcomeKind, reason: str, message: str) -> PhaseResult:
        return PhaseResult(Outcome(Phase.LIQUIDATING, kind, reason, message), self._results())

    # --- candles --------------------------------------------------------------------------------------------
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
        now = await market_now_ms(self.ctx.exchange, self.ctx.spec.market.symbols[0]) // self.tf * self.tf
        self.cp.update(
            started_ms=now,
            ends_ms=now + duration_ms(self.ctx.spec.session.duration),
            initial_equity=equity,
            cash=equity,
            last_closed={},
            equity=[[now, equity]],
            first_prices={},  # the market change over the session: its first and last closes
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
        candles = await self.ctx.exchange.fetch_recent_ohlcv(symbol, self.ctx.timeframe, since, since + 1000 * self.tf)
        # The newest candle is still forming: it is acted on once the next one exists.
        return candles.slice(0, max(len(candles) - 1, 0))

    async def _process_new_candles(self) -> bool:
        for symbol in self.ctx.spec.market.symbols:
            candles = await self._closed_candles(symbol)
            if len(candles) == 0:
                continue
            last = self.cp["last_closed"].get(symbol)
            if last is None:
                # The first step only learns the history; trading starts with the next closed candle.
                self.cp["last_closed"][symbol] = int(candles.time[-1])
                self.cp["last_prices"][symbol] = float(candles.close[-1])
                continue
            new_from = int(np.searchsorted(candles.time, last, side="right"))
            if new_from >= len(candles):
                continue
            skipped: list[str] = []
            lowest = math.inf
            newest = int(candles.time[-1])
            for index in range(new_from, len(candles)):
                # A stop guards a position from its entry on: lows from before it was opened are not its risk.
                held = self.books.position(symbol).amount > 0
                lowest = min(lowest, float(candles.low[index])) if held else math.inf
                fresh = newest - int(candles.time[index]) < self.fresh_ms
                await self._on_candle(symbol, candles, index, act=fresh, skipped=skipped, lowest=lowest)
                if self._risk().killed:
                    return True
            if skipped:
                self.ctx.events.emit(
                    "Trading",
                    "SignalsSkipped",
                    f"{symbol}: {len(skipped)} signal(s) of candles that closed while no driver looked were not "
                    f"acted on ({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''}); only the newest "
                    "closed candles are traded",
                    level="warning",
                    metrics={"symbol": symbol, "skipped": len(skipped)},
                )
        ends = self.cp["ends_ms"]
        return all(self.cp["last_closed"].get(s, -math.inf) + self.tf >= ends for s in self.ctx.spec.market.symbols)

    async def _on_candle(
        self, symbol: str, candles: Candles, index: int, *, act: bool, skipped: list[str], lowest: float
    ) -> None:
        """One closed candle: prices, equity and risk always; orders only for a fresh one (`act`)."""
        time = int(candles.time[index])
        close = float(candles.close[index])
        self.cp["last_closed"][symbol] = time
        self.cp["last_prices"][symbol] = close
        self.cp.setdefault("first_prices", {}).setdefault(symbol, close)
        if self.ctx.prices is not None:
            self.ctx.prices.add(symbol, time, close)
        if time + self.tf > self.cp["ends_ms"]:
            return
        window = candles.slice(max(0, index + 1 - self.window), index + 1)
        signals = self.strategy.signals(window)
        position = self.books.position(symbol)
        if position.amount > 0:
            # The stop is a risk limit, not a signal: a stop crossed by any candle since the last step exits now.
            if act and position.stop is not None and lowest <= position.stop:
                await self.books.sell(symbol, "stop_loss", time)
            elif bool(signals.exits[-1]):
                if act:
                    await self.books.sell(symbol, "signal", time)
                else:
                    skipped.append(f"exit at {time}")
        elif bool(signals.entries[-1]):
            if act:
                await self._buy(symbol, time)
            else:
                skipped.append(f"entry at {time}")
        equity = self._equity()
        append_capped(self.cp["equity"], [time + self.tf, equity], MAX_POINTS)
        state = risk.observe_equity(self.limits, self._risk(), equity, time + self.tf)
        if state.killed and not self._risk().killed:
            self.ctx.events.emit("Trading", "KillSwitch", state.kill_reason, level="error", metrics={"equity": equity})
        self.cp["risk"] = state.to_dict()

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
        await self.books.buy(symbol, amount, time)

    # --- numbers --------------------------------------------------------------------------------------------
    def _equity(self) -> float:
        """The run's equity: its cash plus its positions (and dust) at the last closed prices."""
        return self.books.equity(self.cp["last_prices"])

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
            "openPositions": sum(1 for p in self.cp.get("positions", {}).values() if p["amount"] > 0),
            "fees": float(self.cp.get("fees", 0.0)),
            "killSwitch": self._risk().killed,
            "errors": int(self.cp.get("errors", 0)),
            "progressPct": round(self._progress_pct(), 1),
        }


async def trading_step(ctx: RunContext, checkpoint: dict[str, Any], flush: Flush) -> PhaseResult:
    return await TradingSession(ctx, checkpoint, flush).step()


async def liquidation_step(ctx: RunContext, checkpoint: dict[str, Any], flush: Flush) -> PhaseResult:
    return await TradingSession(ctx, checkpoint, flush).liquidate()

"""Building a run's `RunContext`: shared by `traiding run` and the operator, so both drive the same objects.

Each driver decides where credentials, the simulator URL and the event sinks come from; this module turns
them into the exchange handle, the order API (the paper account in a dry run) and the context.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime

from traiding.domain.orderbook import BookModel
from traiding.domain.statemachine import Approval, Decision, Phase
from traiding.domain.timeframes import duration_timedelta, timeframe_ms
from traiding.pipeline.context import RunContext
from traiding.pipeline.events import EventLog
from traiding.pipeline.history import HistoryStore
from traiding.pipeline.price_series import PriceSeries
from traiding.resource import Mode, TradingRunSpec
from traiding_adapters.connection import Credentials
from traiding_adapters.exchange import Exchange, OrderApi
from traiding_adapters.hub import ExchangeHub
from traiding_adapters.observer import NULL_OBSERVER, ExchangeObserver
from traiding_adapters.paper import PaperBroker, PaperSettings
from traiding_simulator import client_urls

# Checkpoint entry holding the spec a run started with: both drivers keep a run on it (edits are not applied).
SPEC_KEY = "spec"


@dataclass(frozen=True)
class RunIdentity:
    name: str
    uid: str  # seeds the client order ids: stable for the run's whole life, across restarts


def paper_broker(spec: TradingRunSpec, exchange: Exchange, observer: ExchangeObserver = NULL_OBSERVER) -> PaperBroker:
    """The dry run's simulated account on the run's capital; the session restores it from the checkpoint.

    It fills by the simulator's fill model, with the simulator's seed where the run trades against one, so a dry
    and a live run of the same strategy against the simulator fill alike."""
    base_currencies = {symbol.split("/")[0]: 0.0 for symbol in spec.market.symbols}
    simulator = spec.exchange.simulator
    return PaperBroker(
        exchange,
        {spec.capital.currency: spec.capital.initial, **base_currencies},
        PaperSettings(
            fee_rate=spec.costs.feeRate,
            slippage_bps=spec.costs.slippagePct * 100,  # only where the exchange shows no order book
            candle_timeframe=str(spec.market.timeframe),
            book_model=BookModel(seed=simulator.seed) if simulator is not None else BookModel(),
        ),
        observer=observer,
        exchange_id=exchange.exchange_id,
    )


def market_speed(spec: TradingRunSpec) -> float:
    """Market seconds per wall second: the simulator's replay speed, 1 on a real exchange."""
    return spec.exchange.simulator.speed if spec.exchange.simulator is not None else 1.0


def poll_seconds(spec: TradingRunSpec) -> float:
    """How often a trading session looks for new candles: twice per candle, within [0.2 s, 30 s] of wall time."""
    return max(0.2, min(30.0, timeframe_ms(spec.market.timeframe) / 1000 / market_speed(spec) / 2))


def wait_after(decision: Decision, poll: float) -> float:
    """Wall seconds until the next step: the poll interval while a session runs, else the decision's backoff."""
    if decision.phase is Phase.TRADING and decision.retry_after is not None and decision.attempts == 0:
        return poll  # a session in progress: look again when a candle may have closed
    if decision.retry_after is not None:
        return decision.retry_after.total_seconds()
    return 0.0


def approval_of(approved_by: str, approved_at: datetime, valid_from: datetime, ttl: str) -> Approval:
    """An approval by `approved_by`, valid for the run's `approval.ttl` counted from `valid_from`."""
    return Approval(approved_by, approved_at, valid_from + duration_timedelta(ttl))


async def open_context(
    stack: AsyncExitStack,
    hub: ExchangeHub,
    run: RunIdentity,
    spec: TradingRunSpec,
    *,
    credentials: Credentials | None,
    simulator_url: str | None,
    events: EventLog,
    history: HistoryStore,
    credentials_problem: str | None = None,
    prices: PriceSeries | None = None,
) -> RunContext:
    """The run's context; the exchange handle is released when `stack` closes.

    `simulator_url` is the simulator's base URL for runs against the simulator (None for a real exchange);
    a dry run's paper account continues from the checkpoint's saved state at every step of the session.
    `history` is the process's shared candle history; `prices` collects the session's closes for a report.
    `credentials_problem`: why the credentials the run names could not be read (ApiCheck fails with it).
    """
    urls = client_urls(simulator_url) if simulator_url is not None else None
    exchange = hub.get(spec.exchange.id, credentials, urls)
    stack.push_async_callback(exchange.close)
    orders: OrderApi = exchange
    if spec.mode is Mode.DRY_RUN:
        orders = paper_broker(spec, exchange, hub.observer)
    return RunContext(
        run_name=run.name,
        run_uid=run.uid,
        spec=spec,
        exchange=exchange,
        orders=orders,
        events=events,
        history=history,
        has_credentials=credentials is not None,
        credentials_problem=credentials_problem,
        prices=prices,
    )

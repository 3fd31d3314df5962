"""`traiding run RUN.yaml`: every phase of a TradingRun in one process, with the operator's phase code.

Writes into the output folder: `events.jsonl` (one event per line), `status.json` (the run's status,
which `--resume` continues from), `summary.json` and `report.html`. Exits 0 when the run succeeded,
1 when a gate or the exchange stopped it (the reason is printed), 2 for a user error.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import io
import json
import logging
import math
import os
import sys
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from traiding.data import bundled_candle_files, bundled_summary
from traiding.domain.candles import CandleCache
from traiding.domain.statemachine import TERMINAL, Phase
from traiding.domain.timeframes import DAY_MS, duration_ms, format_time, timeframe_ms
from traiding.errors import UserError
from traiding.manifest import load_manifest
from traiding.pipeline.events import EventLog, JsonlSink
from traiding.pipeline.history import HistoryStore
from traiding.pipeline.local import Progress, drive, load_status, save_status
from traiding.pipeline.price_series import PriceSeries
from traiding.pipeline.report_files import REPLAY_KEY, LiveReport, write_report_files
from traiding.pipeline.wiring import SPEC_KEY, RunIdentity, approval_of, market_speed, open_context, poll_seconds
from traiding.resource import SYNTHETIC_DATA, TradingRun, TradingRunSpec, TradingRunStatus
from traiding.settings import EndpointNotAllowed, EndpointSettings, load_settings
from traiding.telemetry.logs import LogSink, file_logging, register_secret, run_fields, set_run_fields
from traiding.telemetry.metrics import Metrics
from traiding.telemetry.runs import facts_of
from traiding.telemetry.server import port_from, serve_metrics
from traiding.telemetry.sink import RunMetricsSink
from traiding_adapters.connection import Credentials
from traiding_adapters.errors import UnknownExchange
from traiding_adapters.hub import ExchangeHub
from traiding_simulator import Simulator, run_simulator
from traiding_simulator.config import ApiKeyConfig, DataSource, SimulatorConfig
from traiding_simulator.market import SYNTHETIC_EPOCH_MS

API_KEY_ENV, API_SECRET_ENV = "TRAIDING_API_KEY", "TRAIDING_API_SECRET"
PRICES_FILE = "prices.json"  # the session's closes for the report's charts (beside status.json, not in it)
DEFAULT_START_FRACTION = float(SimulatorConfig.model_fields["start_fraction"].default)
MAX_SYNTHETIC_DAYS = 365


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="TradingRun manifest (YAML)")
    parser.add_argument("--output", "-o", type=Path, help="output folder (default: runs/<run name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run from the output folder's status")
    parser.add_argument("--force", action="store_true", help="start over even if the output holds an unfinished run")
    parser.add_argument(
        "--approve-live",
        action="store_true",
        help="with --resume: approve a live run that waits at its approval gate (by the local user, valid for the "
        "run's approval.ttl)",
    )
    parser.add_argument("--cache", type=Path, help="candle cache folder (default: ~/.cache/ai-traiding/candles)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug lines in the log files")
    parser.add_argument(
        "--metrics-port",
        help="serve the run's Prometheus metrics on this port at /metrics while it runs (default 0: off)",
    )
    parser.add_argument(
        "--metrics-address", default="127.0.0.1", help="address the metrics server binds (default 127.0.0.1)"
    )


def _credentials(run: TradingRun) -> Credentials | None:
    ref = run.spec.exchange.credentialsSecretRef
    key, secret = os.environ.get(API_KEY_ENV), os.environ.get(API_SECRET_ENV)
    if ref is None and not key:
        return None
    if not key or not secret:
        raise UserError(
            f"the run names credentials (Secret {ref.name if ref else '?'}); locally they come from the "
            f"environment: set {API_KEY_ENV} and {API_SECRET_ENV}"
        )
    register_secret(key, secret)  # redacted from every log line from now on
    return Credentials(api_key=key, secret=secret, source=f"${API_KEY_ENV}/${API_SECRET_ENV}")


def _simulator_data(spec: TradingRunSpec, manifest_dir: Path) -> tuple[list[DataSource], str]:
    """The candles `spec.exchange.simulator.data` names (none for a synthetic market) and their description."""
    sim = spec.exchange.simulator
    assert sim is not None  # nosec B101  # narrows a type; not an input check
    if sim.data == SYNTHETIC_DATA:
        return [], "a seeded synthetic market"
    if sim.data is not None:
        path = (manifest_dir / sim.data).resolve()
        if not path.exists():
            raise UserError(
                f"spec.exchange.simulator.data: {path} does not exist (relative paths are resolved from the "
                f"manifest's folder, {manifest_dir}); leave it empty for the bundled candles"
            )
        return [DataSource(path=path)], str(path)
    files = [f for f in bundled_candle_files() if f.symbol in spec.market.symbols]
    missing = sorted(set(spec.market.symbols) - {f.symbol for f in files})
    if missing:
        raise UserError(
            f"spec.market.symbols: no bundled candles for {', '.join(missing)} (bundled: {bundled_summary()}); "
            f"point spec.exchange.simulator.data at candle files, or set it to {SYNTHETIC_DATA}"
        )
    finest = min(timeframe_ms(f.timeframe) for f in files)
    if timeframe_ms(spec.market.timeframe) % finest:
        raise UserError(
            f"spec.market.timeframe: {spec.market.timeframe} candles cannot be built from the bundled ones "
            f"({bundled_summary()}); point spec.exchange.simulator.data at candle files of that timeframe"
        )
    names = ", ".join(f.name for f in files)
    return [DataSource(symbol=f.symbol, path=f.path, interval=f.timeframe) for f in files], f"bundled candles ({names})"


def _synthetic_days(spec: TradingRunSpec) -> int:
    """Days of synthetic market for the run: the default start (80% through) leaves the lookback before it and
    the session after it; an explicit start needs the session to fit after it."""
    sim = spec.exchange.simulator
    assert sim is not None  # nosec B101  # narrows a type; not an input check
    lookback, session = duration_ms(spec.gates.dataCheck.lookback), duration_ms(spec.session.duration)
    span = max(lookback / DEFAULT_START_FRACTION, session / (1 - DEFAULT_START_FRACTION))
    if sim.start is not None:
        span = max(span, _ms(sim.start) - SYNTHETIC_EPOCH_MS + session)
    days = math.ceil(span / DAY_MS) + 1
    if days > MAX_SYNTHETIC_DAYS:
        raise UserError(
            f"spec.gates.dataCheck.lookback, spec.session.duration: the run needs {days} days of synthetic "
            f"market, more than the {MAX_SYNTHETIC_DAYS} it can have; shorten them or replay candle files"
        )
    return days


def _simulator_config(
    spec: TradingRunSpec, data: list[DataSource], *, hold: bool, replay: dict[str, int] | None = None
) -> SimulatorConfig:
    """`hold`: the replay stands still at its start until the trading session begins (see `_ReplayHold`).
    `replay`: where and by how many days a run that is resumed replayed its market (`REPLAY_KEY`), so it goes on
    in the same market time whatever the day it is resumed on."""
    sim = spec.exchange.simulator
    assert sim is not None  # nosec B101  # narrows a type; not an input check
    keys = []
    key, secret = os.environ.get(API_KEY_ENV), os.environ.get(API_SECRET_ENV)
    if key and secret:
        keys.append(ApiKeyConfig(key=key, secret=SecretStr(secret)))
    return SimulatorConfig(
        data=data,
        speed=0.0 if hold else sim.speed,
        start=replay["startMs"] if replay else sim.start,
        shift_days=replay["shiftDays"] if replay else None,
        seed=sim.seed,
        keys=keys,
        log_requests=False,
        synthetic_symbols={symbol: 100.0 for symbol in spec.market.symbols},
        synthetic_days=_synthetic_days(spec) if not data else 30,
    )


def check_replay_window(spec: TradingRunSpec, first_ms: int, end_ms: int, start_ms: int) -> None:
    """The lookback must lie in the data before the replay start and the session after it (it would wait forever
    for candles past the end of the data)."""
    lookback, session = duration_ms(spec.gates.dataCheck.lookback), duration_ms(spec.session.duration)
    where = f"the replay start {format_time(start_ms)}"
    data = f"the data ({format_time(first_ms)} to {format_time(end_ms)})"
    if start_ms - lookback < first_ms:
        raise UserError(
            f"spec.gates.dataCheck.lookback: {spec.gates.dataCheck.lookback} before {where} begins before {data}; "
            f"set spec.exchange.simulator.start to {format_time(first_ms + lookback)} or later, or shorten the lookback"
        )
    if start_ms + session > end_ms:
        raise UserError(
            f"spec.session.duration: a {spec.session.duration} session from {where} runs past the end of {data}; "
            f"set spec.exchange.simulator.start to {format_time(end_ms - session)} or earlier, or shorten the session"
        )


class _ReplayHold:
    """Holds the simulator's replay at its start until the trading session begins, then lets it run at the
    run's speed: the lookback then ends exactly at `simulator.start` and the session starts there, however
    long DataCheck and Backtest take in wall time (at 600x a second of wall time is ten minutes of market)."""

    def __init__(self, sim: Simulator, speed: float) -> None:
        self.sim = sim
        self.speed = speed
        self.held = sim.state.replay.speed == 0

    def __call__(self, status: TradingRunStatus) -> None:
        if self.held and Phase(status.phase) in (Phase.TRADING, Phase.REPORTING):
            self.sim.set_clock(speed=self.speed)
            self.held = False


def _prepare_output(args: argparse.Namespace, run: TradingRun) -> tuple[Path, TradingRunStatus]:
    output: Path = args.output or Path("runs") / run.metadata.name
    output.mkdir(parents=True, exist_ok=True)
    status_path = output / "status.json"
    spec = run.spec.model_dump(mode="json")
    previous = load_status(status_path) if status_path.exists() else None
    if args.resume:
        if previous is None:
            raise UserError(f"nothing to resume: {status_path} does not exist")
        # A run keeps the spec it started with (as in the cluster): an edited manifest must not, say, turn a
        # dry run in its trading session into a live one that never passed the key checks or an approval.
        started_with = previous.checkpoint.get(SPEC_KEY)
        if started_with is not None and started_with != spec:
            changed = sorted(k for k in spec.keys() | started_with.keys() if spec.get(k) != started_with.get(k))
            raise UserError(
                f"{args.manifest} changed since the run started (spec.{', spec.'.join(changed)}); a run keeps the "
                "spec it started with: undo the change to resume, or start over with --force"
            )
        return output, previous
    if previous is not None and Phase(previous.phase) not in TERMINAL and not args.force:
        raise UserError(
            f"{output} holds an unfinished run (phase {previous.phase}): continue it with --resume, "
            "or discard it with --force"
        )
    for stale in ("events.jsonl", "summary.json", "report.html", "status.json", PRICES_FILE):
        (output / stale).unlink(missing_ok=True)
    return output, TradingRunStatus(checkpoint={"runUid": uuid.uuid4().hex[:12], SPEC_KEY: spec})


async def _run(
    args: argparse.Namespace,
    run: TradingRun,
    output: Path,
    status: TradingRunStatus,
    metrics: Metrics,
    *,
    prices: PriceSeries,
) -> TradingRunStatus:
    status_path = output / "status.json"
    run_uid = str(status.checkpoint["runUid"])
    spec = run.spec
    credentials = _credentials(run)
    sink = JsonlSink(output / "events.jsonl")
    facts = facts_of(run.model_dump(mode="json"))
    events = EventLog(
        run.metadata.name, [sink, LogSink(), RunMetricsSink(metrics, mode=facts.mode, trigger=facts.trigger)]
    )
    hub = ExchangeHub(observer=metrics)
    metrics.watch_exchanges(hub)
    key = ("", run.metadata.name)

    def observe(current: TradingRunStatus) -> None:
        set_run_fields(phase=current.phase)
        metrics.runs.observe(key, facts_of({**run.model_dump(mode="json"), "status": current.model_dump(mode="json")}))

    report = LiveReport(output, run, _cache(args), prices)
    observers: list[Callable[[TradingRunStatus], None]] = [
        lambda _: prices.save(output / PRICES_FILE),
        report.update,
        observe,
    ]
    history = HistoryStore(_cache(args))  # one run: its CPU work runs inline
    async with AsyncExitStack() as stack:
        stack.callback(metrics.unwatch_exchanges, hub)
        base_url = None
        if spec.exchange.simulator is not None:
            if spec.exchange.simulator.name is not None:  # a running simulator, from the allowlist
                try:
                    base_url = load_settings(EndpointSettings).simulator_url(spec.exchange.simulator.name)
                except EndpointNotAllowed as error:
                    raise UserError(str(error)) from None
            else:
                data, described = _simulator_data(spec, args.manifest.resolve().parent)
                hold = Phase(status.phase) not in (Phase.TRADING, Phase.REPORTING)
                config = _simulator_config(spec, data, hold=hold, replay=status.checkpoint.get(REPLAY_KEY))
                sim = await stack.enter_async_context(run_simulator(config))
                market, start_ms, shift = sim.state.market, sim.state.replay.start_ms, sim.state.shift_ms
                # in the data's own dates, as the manifest gives them
                check_replay_window(spec, market.first_ms - shift, market.end_ms - shift, start_ms - shift)
                status.checkpoint[REPLAY_KEY] = {"startMs": start_ms - shift, "shiftDays": shift // DAY_MS}
                observers.append(_ReplayHold(sim, market_speed(spec)))
                base_url = sim.base_url
                events.emit(
                    "Pending",
                    "SimulatorStarted",
                    f"exchange simulator on {base_url} replaying {described} from {format_time(start_ms - shift)} "
                    f"at {market_speed(spec):g}x (held there until the trading session begins), on the wall "
                    f"clock's date: market times are the data's plus {shift // DAY_MS} days (the start is "
                    f"{format_time(start_ms)})",
                )
        stack.push_async_callback(hub.close)  # after the simulator's exit, so connections close before it stops
        stack.push_async_callback(history.flush)  # the report reads the cache once the run is over
        try:
            ctx = await open_context(
                stack,
                hub,
                RunIdentity(run.metadata.name, run_uid),
                spec,
                credentials=credentials,
                simulator_url=base_url,
                events=events,
                history=history,
                prices=prices,
            )
        except UnknownExchange as error:
            raise UserError(f"spec.exchange.id: {error}") from None
        approval = None
        if args.approve_live and Phase(status.phase) is Phase.AWAITING_APPROVAL:
            now = datetime.now(UTC)
            approval = approval_of(getpass.getuser(), now, now, spec.approval.ttl)
        for observer in observers:
            observer(status)
        status = await drive(
            ctx,
            status,
            status_path,
            approval=approval,
            poll_seconds=poll_seconds(spec),
            progress=Progress(io.StringIO(), live=ctx.live) if args.quiet else Progress(live=ctx.live),
            observers=observers,
        )
    sink.close()
    return status


def _exit_code(status: TradingRunStatus, output: Path) -> int:
    phase = Phase(status.phase)
    if phase is Phase.SUCCEEDED:
        summary = status.summary
        roi = f", ROI {summary.roiPct:+.2f}%" if summary and summary.roiPct is not None else ""
        print(f"Succeeded{roi}. Report: {output / 'report.html'}", file=sys.stderr)
        return 0
    if phase is Phase.AWAITING_APPROVAL:
        print(
            "AwaitingApproval: live runs need an explicit approval; run again with --resume --approve-live",
            file=sys.stderr,
        )
        return 3
    failed_phase = next((name for name, rec in status.phases.items() if rec.state in ("Failed", "Cancelled")), "?")
    print(f"{phase} in {failed_phase}: {status.reason}: {status.message}", file=sys.stderr)
    print(json.dumps({"phase": phase.value, "reason": status.reason, "message": status.message}), file=sys.stdout)
    return 1


# Phases of a run whose gates have not all run yet: `--approve-live` is refused there.
BEFORE_THE_GATE = frozenset({Phase.PENDING, Phase.DATA_CHECK, Phase.BACKTEST, Phase.API_CHECK})


def check_approval_flag(args: argparse.Namespace, status: TradingRunStatus) -> None:
    """`--approve-live` approves a run that waits at its gate, never one whose gates have not run yet (a run past
    its gate, resumed after a crash, was approved already: the flag changes nothing there)."""
    if args.approve_live and Phase(status.phase) in BEFORE_THE_GATE:
        raise UserError(
            f"--approve-live approves a live run that waits at its approval gate; this run is in {status.phase}: "
            "run it without --approve-live first (a live run stops at AwaitingApproval once every gate has "
            "passed), then approve it with --resume --approve-live"
        )


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    port = port_from(args.metrics_port, env={})  # only the flag: a shell's operator setting must not apply here
    output, status = _prepare_output(args, manifest)
    check_approval_flag(args, status)
    metrics = Metrics("run")
    prices = PriceSeries.load(output / PRICES_FILE)
    server = serve_metrics(metrics, port, args.metrics_address)
    if server is not None:
        print(f"metrics on http://{args.metrics_address}:{server.port}/metrics", file=sys.stderr)
    try:
        with (
            file_logging(output / "logs", logging.DEBUG if args.verbose else logging.INFO),
            run_fields(run=manifest.metadata.name, exchange=manifest.spec.exchange.id),
        ):
            status = asyncio.run(_run(args, manifest, output, status, metrics, prices=prices))
        save_status(output / "status.json", status)
        prices.save(output / PRICES_FILE)
        write_report_files(output, manifest, status, _cache(args), prices)
    finally:
        if server is not None:
            server.stop()
    return _exit_code(status, output)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _cache(args: argparse.Namespace) -> CandleCache:
    return CandleCache(args.cache or Path.home() / ".cache" / "ai-traiding" / "candles")

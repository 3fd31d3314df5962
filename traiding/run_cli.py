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
import os
import sys
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from traiding.domain.candles import CandleCache
from traiding.domain.statemachine import TERMINAL, Phase
from traiding.domain.timeframes import duration_ms
from traiding.errors import UserError
from traiding.manifest import load_manifest
from traiding.pipeline.events import EventLog, JsonlSink
from traiding.pipeline.local import Progress, drive, load_status, save_status
from traiding.pipeline.report_files import write_report_files
from traiding.pipeline.wiring import SPEC_KEY, RunIdentity, approval_of, market_speed, open_context, poll_seconds
from traiding.resource import TradingRun, TradingRunSpec, TradingRunStatus
from traiding_adapters.connection import Credentials
from traiding_adapters.errors import UnknownExchange
from traiding_adapters.hub import ExchangeHub
from traiding_simulator import run_simulator
from traiding_simulator.config import ApiKeyConfig, DataSource, SimulatorConfig

API_KEY_ENV, API_SECRET_ENV = "TRAIDING_API_KEY", "TRAIDING_API_SECRET"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="TradingRun manifest (YAML)")
    parser.add_argument("--output", "-o", type=Path, help="output folder (default: runs/<run name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run from the output folder's status")
    parser.add_argument("--force", action="store_true", help="start over even if the output holds an unfinished run")
    parser.add_argument(
        "--approve-live",
        action="store_true",
        help="record your approval of a live run (by the local user, valid for the run's approval.ttl)",
    )
    parser.add_argument("--cache", type=Path, help="candle cache folder (default: ~/.cache/ai-traiding/candles)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress display")


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
    return Credentials(api_key=key, secret=secret, source=f"${API_KEY_ENV}/${API_SECRET_ENV}")


def _simulator_config(spec: TradingRunSpec, manifest_dir: Path) -> SimulatorConfig:
    sim = spec.exchange.simulator
    assert sim is not None
    sources: list[DataSource] = []
    if sim.data:
        path = (manifest_dir / sim.data).resolve()
        if path.exists():
            sources.append(DataSource(path=path))
        else:
            print(f"note: simulator data {path} not found; using a seeded synthetic market", file=sys.stderr)
    keys = []
    key, secret = os.environ.get(API_KEY_ENV), os.environ.get(API_SECRET_ENV)
    if key and secret:
        keys.append(ApiKeyConfig(key=key, secret=SecretStr(secret)))
    # A synthetic market long enough for the run: the lookback before the replay starts, the session after it.
    day_ms = 86_400_000
    lookback_days = -(-duration_ms(spec.gates.dataCheck.lookback) // day_ms) + 1
    days = lookback_days + -(-duration_ms(spec.session.duration) // day_ms) + 2
    return SimulatorConfig(
        data=sources,
        speed=sim.speed,
        seed=sim.seed,
        keys=keys,
        log_requests=False,
        synthetic_symbols={symbol: 100.0 for symbol in spec.market.symbols},
        synthetic_days=min(days, 365),
        start_fraction=min(lookback_days / days, 1.0),
    )


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
    for stale in ("events.jsonl", "summary.json", "report.html", "status.json"):
        (output / stale).unlink(missing_ok=True)
    return output, TradingRunStatus(checkpoint={"runUid": uuid.uuid4().hex[:12], SPEC_KEY: spec})


async def _run(args: argparse.Namespace, run: TradingRun, output: Path, status: TradingRunStatus) -> TradingRunStatus:
    status_path = output / "status.json"
    run_uid = str(status.checkpoint["runUid"])
    spec = run.spec
    credentials = _credentials(run)
    sink = JsonlSink(output / "events.jsonl")
    events = EventLog(run.metadata.name, [sink])
    hub = ExchangeHub()
    async with AsyncExitStack() as stack:
        base_url = None
        if spec.exchange.simulator is not None:
            base_url = spec.exchange.simulator.url
            if base_url is None:
                sim = await stack.enter_async_context(
                    run_simulator(_simulator_config(spec, args.manifest.resolve().parent))
                )
                base_url = sim.base_url
                events.emit(
                    "Pending", "SimulatorStarted", f"exchange simulator on {base_url} at {market_speed(spec):g}x"
                )
        stack.push_async_callback(hub.close)  # after the simulator's exit, so connections close before it stops
        try:
            ctx = await open_context(
                stack,
                hub,
                RunIdentity(run.metadata.name, run_uid),
                spec,
                credentials=credentials,
                simulator_url=base_url,
                events=events,
                cache=_cache(args),
            )
        except UnknownExchange as error:
            raise UserError(f"spec.exchange.id: {error}") from None
        approval = None
        if args.approve_live:
            now = datetime.now(UTC)
            approval = approval_of(getpass.getuser(), now, now, spec.approval.ttl)
        status = await drive(
            ctx,
            status,
            status_path,
            approval=approval,
            poll_seconds=poll_seconds(spec),
            progress=Progress(io.StringIO()) if args.quiet else Progress(),
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


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    output, status = _prepare_output(args, manifest)
    status = asyncio.run(_run(args, manifest, output, status))
    save_status(output / "status.json", status)
    write_report_files(output, manifest, status, _cache(args))
    return _exit_code(status, output)


def _cache(args: argparse.Namespace) -> CandleCache:
    return CandleCache(args.cache or Path.home() / ".cache" / "ai-traiding" / "candles")

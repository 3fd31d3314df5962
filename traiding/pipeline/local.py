"""Drive a run to its end in one process (`traiding run`), persisting the status after every step.

The status file is the local stand-in for the object in the cluster: `--resume` continues a run
from it exactly as a restarted operator continues from the object's status.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from traiding.domain.statemachine import TERMINAL, Approval, Phase
from traiding.pipeline.context import RunContext
from traiding.pipeline.runner import advance
from traiding.pipeline.wiring import wait_after
from traiding.resource import TradingRunStatus

ORDERED_PHASES = [p.value for p in Phase if p not in TERMINAL]
SESSION_PROGRESS_STEP_PCT = 10  # without a terminal, a progress line at least every 10% of the session


def save_status(path: Path, status: TradingRunStatus) -> None:
    _write_durably(path, json.dumps(status.model_dump(mode="json", exclude_none=True), indent=1))


def _write_durably(path: Path, text: str) -> None:
    """Replace the file atomically and durably: a crash leaves the old file or the new one, never half of one,
    and an order's intent written here is on disk before the order is sent."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


async def save_status_async(path: Path, status: TradingRunStatus) -> None:
    """`save_status` without blocking the event loop (the status is serialised before the write starts)."""
    text = json.dumps(status.model_dump(mode="json", exclude_none=True), indent=1)
    await asyncio.to_thread(_write_durably, path, text)


def load_status(path: Path) -> TradingRunStatus:
    return TradingRunStatus.model_validate_json(path.read_text())


class Progress:
    """A numbered line as each phase starts and one with its outcome as it ends; meanwhile, on a terminal, a live
    line for the phase in progress, and elsewhere (piped, in CI) a line at every 10% of the trading session.

    Steps are numbered over the phases this run passes through: a dry run has no AwaitingApproval step, and
    Liquidating (a session that must still close positions) is an exception, shown without a number.
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.steps = [
            p
            for p in ORDERED_PHASES
            if p not in (Phase.PENDING, Phase.LIQUIDATING) and (live or p != Phase.AWAITING_APPROVAL)
        ]
        self._phase: str | None = None
        self._live = False
        self._next_pct = SESSION_PROGRESS_STEP_PCT

    def update(self, status: TradingRunStatus) -> None:
        phase, message = status.phase, status.message or ""
        if self._phase is None:
            self._phase = phase
            self._print_phase_start(phase)
            return
        if phase != self._phase:
            self._end_live()
            finished = status.phases.get(self._phase)
            mark = {"Passed": "ok", "Failed": "FAILED", "Cancelled": "cancelled"}.get(
                finished.state if finished else "", "ok"
            )
            if self._phase != Phase.PENDING:
                print(f"    {mark}: {message}", file=self.stream, flush=True)
            self._phase = phase
            self._print_phase_start(phase)
        elif self.tty:
            print(f"\r    {message[:110]:<110}", end="", file=self.stream, flush=True)
            self._live = True
        elif phase == Phase.TRADING:
            self._session_line(status, message)

    def _session_line(self, status: TradingRunStatus, message: str) -> None:
        record = status.phases.get(Phase.TRADING.value)
        pct = record.results.get("progressPct") if record else None
        if isinstance(pct, int | float) and pct >= self._next_pct:
            print(f"    {message}", file=self.stream, flush=True)
            while self._next_pct <= pct:
                self._next_pct += SESSION_PROGRESS_STEP_PCT

    def _print_phase_start(self, phase: str) -> None:
        if phase in self.steps:
            print(f"[{self.steps.index(phase) + 1}/{len(self.steps)}] {phase}", file=self.stream, flush=True)
        elif phase == Phase.LIQUIDATING:
            print(f"[!] {phase}: closing the positions the session still holds", file=self.stream, flush=True)

    def _end_live(self) -> None:
        if self._live:
            print(file=self.stream)
            self._live = False


async def drive(
    ctx: RunContext,
    status: TradingRunStatus,
    status_path: Path,
    *,
    approval: Approval | None = None,
    poll_seconds: float = 1.0,
    progress: Progress | None = None,
    observers: Sequence[Callable[[TradingRunStatus], None]] = (),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> TradingRunStatus:
    """Step the run until it reaches a final phase (or waits for an approval nobody gave); after each step the
    status is saved, shown, and handed to each of `observers` (the live report, the replay hold, the metrics of
    `traiding run --metrics-port`). Within a step, the phase work saves the status through `persist` before it
    sends an order (write-ahead intents)."""
    progress = progress or Progress(live=ctx.live)

    async def persist(current: TradingRunStatus) -> None:
        await save_status_async(status_path, current)

    while Phase(status.phase) not in TERMINAL:
        status, decision = await advance(ctx, status, clock(), approval=approval, persist=persist)
        save_status(status_path, status)
        progress.update(status)
        for observe in observers:
            observe(status)
        if decision.phase is Phase.AWAITING_APPROVAL and approval is None:
            break
        await asyncio.sleep(wait_after(decision, poll_seconds))
    return status

"""Drives one TradingRun: hold its Lease, read it, call `advance`, write the status, wait, until it is final.

Everything the next step needs is in the object's status, so a new driver, in this operator or another
one, continues where the last one stopped. Only the holder of the run's Lease drives it (see lease.py), and
every status write is guarded by the resourceVersion the step read (see status_writer.py): a step whose
view went stale ends, the run is read again, and the next step reconciles whatever the lost one sent. The
one write without the Lease is a new run's first status (`pick_up`), which only a run with no phase gets.

Two entry points: `drive`, the daemon of an unfinished run, and `delete`, the deletion handler, which holds
the finalizer until the run has closed its positions (or left them, if its spec says so).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from traiding.domain.statemachine import TERMINAL, Decision, Phase
from traiding.pipeline.context import RunContext
from traiding.pipeline.events import EventLog, EventSink, MemorySink
from traiding.pipeline.halt import HALTABLE, HaltResult, halt_step, is_halted
from traiding.pipeline.history import HistoryStore
from traiding.pipeline.runner import advance, start
from traiding.pipeline.session import holds_positions
from traiding.pipeline.wiring import SPEC_KEY, RunIdentity, open_context, poll_seconds, wait_after
from traiding.resource import API_GROUP, API_VERSION, KIND, TradingRunSpec, TradingRunStatus
from traiding.settings import EndpointNotAllowed
from traiding.telemetry.logs import set_run_fields
from traiding.telemetry.metrics import Metrics
from traiding.telemetry.runs import facts_of
from traiding.telemetry.sink import RunMetricsSink
from traiding_adapters.connection import Credentials
from traiding_adapters.errors import ExchangeLayerError
from traiding_adapters.hub import ExchangeHub
from traiding_operator.annotations import RESUME, cancel_requested
from traiding_operator.config import OperatorSettings
from traiding_operator.credentials import CredentialsError, read_credentials, read_keys_policy
from traiding_operator.kill_switch import KillSwitches
from traiding_operator.kube import KubeCalls
from traiding_operator.kube_events import EventRecorder, KubernetesEventSink, ObjectRef
from traiding_operator.lease import LeaseLost, LeaseSettings, RunLease
from traiding_operator.run_status import (
    approval_before_gate,
    current_approval,
    fail_status,
    note_approval_at_gate,
    note_operator_trouble,
    note_spec_generation,
    stop_status,
)
from traiding_operator.status_throttle import StatusThrottle
from traiding_operator.status_writer import RunGone, StatusConflict, StatusWriter

ANNOTATION_POLL_SECONDS = 1.0  # how soon an approval or cancel annotation is acted on while waiting
FINALIZER_WAIT_SECONDS = 1.0
FIRST_FINALIZER_POLL_SECONDS, FIRST_FINALIZER_POLLS = 0.02, 100
MAX_FAILURES = 5  # unexpected errors in a row before the run says why (and, if it holds nothing, fails)
MAX_FAILURE_BACKOFF_SECONDS = 60.0
# Phases whose work needs no API key: credentials that cannot be read fail the run's ApiCheck, not its start.
KEYLESS_PHASES = frozenset({Phase.PENDING, Phase.DATA_CHECK, Phase.BACKTEST, Phase.API_CHECK})
# A live run in these phases has not traded yet: a set kill switch refuses it.
BEFORE_TRADING = frozenset({Phase.PENDING, Phase.DATA_CHECK, Phase.BACKTEST, Phase.API_CHECK, Phase.AWAITING_APPROVAL})

Logger = logging.Logger | logging.LoggerAdapter[Any]
Sleep = Callable[[float], Awaitable[Any]]


@dataclass
class OperatorRuntime:
    """What every run's driver shares: API calls, the exchange hub (one budget per key), the candle history
    (and the process pool its CPU work runs in), the Event recorder, the settings, identity, the metrics and
    the kill switches."""

    kube: KubeCalls
    hub: ExchangeHub
    history: HistoryStore
    events: EventRecorder
    config: OperatorSettings
    identity: str  # holder identity of this process's Leases
    lease: LeaseSettings
    finalizer: str
    metrics: Metrics
    kill_switches: KillSwitches
    driving: set[str] = field(default_factory=set)  # uids whose daemon runs in this process
    # uid -> the first status `pick_up` gave kopf to send, and its Events (told by `picked_up` once it landed)
    pickups: dict[str, tuple[dict[str, Any], MemorySink]] = field(default_factory=dict)
    # uid -> the task stepping a deleted run that only another operator's finalizer guards (handlers.observe)
    adoptions: dict[str, asyncio.Task[None]] = field(default_factory=dict)


def put_first_status(status: dict[str, Any], takes: Callable[[Mapping[str, Any]], bool], body: dict[str, Any]) -> None:
    """Kopf's patch function for a new run's first status (`RunDriver.pick_up`): kopf applies it to the object
    as it last saw it and sends the difference as a JSON patch guarded by the resourceVersion. Kopf applies it
    again on a later cycle when the patch was refused for a newer change, without asking the handler again, so
    it asks `takes` itself: a run that has a phase by now, is being deleted or left the shard gets nothing."""
    if takes(body):
        body["status"] = copy.deepcopy(status)


class RunStartError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


FINAL_PHASES = frozenset(phase.value for phase in TERMINAL)


def is_final(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in FINAL_PHASES


def initial_status(raw: Any, uid: str, generation: int | None, spec: dict[str, Any]) -> TradingRunStatus:
    """The object's status, or a fresh one: the run's uid seeds the client order ids, the spec is frozen."""
    status = TradingRunStatus.model_validate(dict(raw or {}))
    status.checkpoint.setdefault("runUid", uid.replace("-", "")[:12])
    status.checkpoint.setdefault(SPEC_KEY, spec)
    if status.observedGeneration is None:
        status.observedGeneration = generation
    return status


class RunDriver:
    def __init__(self, body: kopf.Body, runtime: OperatorRuntime, logger: Logger) -> None:
        self.body = body  # kopf keeps it current: annotations added later are seen here
        self.runtime = runtime
        self.logger = logger
        self.name = str(body.metadata.name)
        self.namespace = str(body.metadata.namespace)
        self.uid = str(body.metadata.uid)
        self.writer = StatusWriter(runtime.kube, self.namespace, self.name)
        self.throttle = StatusThrottle()
        self.lease = RunLease(
            runtime.kube,
            namespace=self.namespace,
            run_name=self.name,
            run_uid=self.uid,
            identity=runtime.identity,
            settings=runtime.lease,
        )
        facts = facts_of(body)
        self.ref = ObjectRef(f"{API_GROUP}/{API_VERSION}", KIND, self.namespace, self.name, self.uid)
        sinks: list[EventSink] = [
            KubernetesEventSink(runtime.events, self.ref, logger),
            RunMetricsSink(runtime.metrics, mode=facts.mode, trigger=facts.trigger),
        ]
        self.events = EventLog(self.name, sinks)

    # --- entry points ---------------------------------------------------------------------------------------
    async def drive(self, stopped: kopf.DaemonStopped) -> None:
        """The daemon: wait for the Lease, drive while holding it, until the run is final or the daemon stops."""
        self.runtime.driving.add(self.uid)
        failures = 0
        try:
            while not stopped:
                try:
                    if not await self._acquire(stopped):
                        await stopped.wait(self.lease.settings.retry_s)
                        continue
                    async with self.lease.kept():
                        if await self._run(stopped.wait, lambda: bool(stopped), deleting=False):
                            return
                    failures = 0
                except (LeaseLost, StatusConflict) as lost:
                    self.logger.warning(f"stopped driving for now: {lost}")
                except RunGone:
                    return
                except Exception as error:  # the API server, a bug: retried with backoff, then said on the run
                    failures += 1
                    self.logger.exception(f"driving the run failed ({failures} in a row): {error}")
                    if failures >= MAX_FAILURES and await self._give_up(error, failures):
                        return
                    await stopped.wait(min(MAX_FAILURE_BACKOFF_SECONDS, 2.0**failures))
        finally:
            self.runtime.driving.discard(self.uid)
            self.runtime.pickups.pop(self.uid, None)
            await self.lease.release()

    async def delete(self) -> None:
        """The deletion handler: once this process's daemon has stopped and the Lease is ours, step the run as
        deleted until it is final (positions closed, or left as the spec says); kopf then drops the finalizer."""
        if self.uid in self.runtime.driving:
            raise kopf.TemporaryError("waiting for the run's driver to stop", delay=1)
        try:
            if not await self.lease.try_acquire():
                raise kopf.TemporaryError(
                    f"the run is driven by {self.lease.holder}; waiting for its Lease",
                    delay=self.lease.settings.retry_s,
                )
            async with self.lease.kept():
                await self._run(asyncio.sleep, lambda: False, deleting=True)
        except (LeaseLost, StatusConflict, ExchangeLayerError, OSError) as error:
            raise kopf.TemporaryError(f"deleting the run: {error}", delay=5) from error
        except RunGone:
            return
        finally:
            await self.lease.release()

    def pick_up(self, patch: kopf.Patch, takes: Callable[[Mapping[str, Any]], bool]) -> None:
        """A new run as its watch event shows it: Pending -> DataCheck, handed to kopf to send with the patch it
        makes in this same cycle (its finalizer), before the daemon has taken the run's Lease: a run says it was
        picked up within two requests made at once, even with hundreds of runs applied together.

        The one status write made without the Lease. Kopf sends it as a JSON patch guarded by the object's
        resourceVersion, and it only ever sets the status of a run that has no phase yet: of two operators
        racing for it one wins, the other's is refused or finds the phase set. Nothing else is done here; a run
        this could not start (an invalid spec, a refused patch) is left to its driver, which writes the first
        status itself when it finds the run still Pending, or fails the run saying why. `takes`: whether a run
        (as kopf sees it when it sends the patch) may still get its first status. The first status's Events are
        told by the process whose pick-up landed, once its watch shows it (`picked_up`)."""
        status = self._watched()
        if Phase(status.phase) is not Phase.PENDING:
            return
        try:
            spec = self._spec(status)
        except RunStartError:
            return
        first, said = self._first_status(spec, status)
        payload = first.model_dump(mode="json", exclude_none=True)
        patch.fns.append(functools.partial(put_first_status, payload, takes))
        self.runtime.pickups[self.uid] = (payload, said)

    def picked_up(self) -> None:
        """The watch shows a run this process picked up with a phase now: if it holds exactly the status this
        process handed to kopf, its pick-up landed and it tells the first status's Events (wherever the run's
        Lease is); whatever else it holds (another operator's pick-up won, the driver wrote it), nothing."""
        seen = dict(self.body.get("status") or {})  # kopf's view of the status, as a plain dict
        if not seen.get("phase"):
            return  # kopf is still sending it
        picked = self.runtime.pickups.pop(self.uid, None)
        if picked is not None and seen == picked[0]:
            self._tell(picked[1])

    # --- driving --------------------------------------------------------------------------------------------
    async def _read(self, *, watched: bool = False) -> TradingRunStatus:
        """The run's status as stored; `watched`: as kopf last saw it (no request; a stale view fails the first
        write with a conflict, and the run is read again)."""
        return self._watched() if watched else self._status_of(await self.writer.read())

    def _watched(self) -> TradingRunStatus:
        return self._status_of(self.writer.adopt(copy.deepcopy(dict(self.body))))

    def _status_of(self, obj: dict[str, Any]) -> TradingRunStatus:
        generation = obj.get("metadata", {}).get("generation")
        status = initial_status(
            obj.get("status"), self.uid, int(generation) if generation else None, dict(obj.get("spec") or {})
        )
        self.throttle.written(status)
        return status

    async def _run(self, sleep: Sleep, stop: Callable[[], bool], *, deleting: bool) -> bool:
        """Drive from the stored status while the Lease is held; True once the run is final."""
        if not deleting:
            await self._until_finalizer(sleep, stop)
            await self._until_picked_up(sleep, stop)
        status = await self._read(watched=True)
        if Phase(status.phase) in TERMINAL:
            return True
        now = datetime.now(UTC)
        # This task (and only it) logs with the run's fields; the phase follows every step.
        exchange_id = (status.checkpoint[SPEC_KEY].get("exchange") or {}).get("id")
        set_run_fields(run=self.name, namespace=self.namespace, phase=status.phase, exchange=exchange_id)
        started_generation = status.observedGeneration
        if deleting and Phase(status.phase) not in (Phase.TRADING, Phase.LIQUIDATING):
            await self._write_with_event(status, stop_status(status, now, "Deleted", f"deleted during {status.phase}"))
            return True
        async with AsyncExitStack() as stack:
            try:
                spec = self._spec(status)
                if Phase(status.phase) is Phase.PENDING:
                    status = await self._write_first_status(spec, status)
                ctx = await self._context(stack, status, spec)
            except RunStartError as error:
                if holds_positions(status.checkpoint):
                    raise RuntimeError(f"{error.reason}: {error.message}") from None  # retried: positions wait
                failed = fail_status(status, now, error.reason, error.message, started_generation)
                await self._write_with_event(status, failed)
                self.logger.info(f"run failed before its phase work: {error.reason}: {error.message}")
                return True
            poll = poll_seconds(ctx.spec)
            while not stop():
                self.lease.check()
                if Phase(status.phase) is Phase.TRADING and not deleting and not self._finalizer_present():
                    await sleep(FINALIZER_WAIT_SECONDS)  # kopf adds it at once; never trade without it
                    continue
                try:
                    status, decision = await self._step(ctx, status, started_generation, deleting=deleting)
                except StatusConflict as conflict:
                    self.logger.info(f"{conflict}: reading it again")
                    status = await self._read()
                    if Phase(status.phase) in TERMINAL:
                        return True
                    continue
                if decision.final:
                    self.logger.info(f"run finished: {decision.phase}: {decision.message}")
                    return True
                wait = wait_after(decision, poll)
                if decision.phase is Phase.AWAITING_APPROVAL or is_halted(status.checkpoint):
                    wait = min(wait, ANNOTATION_POLL_SECONDS)  # an approval or a resume is acted on soon
                await self._sleep_watching_kill_switch(sleep, stop, wait, ctx, status)
            if self.throttle.pending:  # a stopping operator leaves the run as far as it got
                await self._persist(status)
        return False

    async def _write_first_status(self, spec: TradingRunSpec, status: TradingRunStatus) -> TradingRunStatus:
        """Pending -> DataCheck, written before any work, when `pick_up` has not (it failed, or the run came
        from before this operator). A write refused because the object changed is retried once on a fresh read."""
        for attempt in (1, 2):
            if Phase(status.phase) is not Phase.PENDING:
                return status
            first, said = self._first_status(spec, status)
            try:
                await self._persist(first)
            except StatusConflict:
                if attempt == 2:
                    raise
                status = await self._read()
                continue
            self._tell(said)
            return first
        return status

    def _first_status(self, spec: TradingRunSpec, status: TradingRunStatus) -> tuple[TradingRunStatus, MemorySink]:
        """The first status and the Events it brings, which are told only once it is written."""
        said = MemorySink()
        now = datetime.now(UTC)
        first = start(spec, EventLog(self.name, [said]), status, now, generation=status.observedGeneration)
        return first, said

    def _tell(self, said: MemorySink) -> None:
        for event in said.events:
            for sink in self.events.sinks:
                sink.emit(event)

    async def _acquire(self, stopped: kopf.DaemonStopped) -> bool:
        """Take the Lease; for a new run while kopf's finalizer arrives: the first status write needs both, and
        waiting for one after the other would put a round trip more before a run says it was picked up."""
        if self._finalizer_present():
            return await self.lease.try_acquire()
        acquired, _ = await asyncio.gather(
            self.lease.try_acquire(), self._until_finalizer(stopped.wait, lambda: bool(stopped))
        )
        return acquired

    async def _until_picked_up(self, sleep: Sleep, stop: Callable[[], bool]) -> None:
        """Wait (briefly) while kopf sends the first status this process's `pick_up` gave it (right after the
        finalizer): a status written meanwhile from the view before it would only be refused. Without it (the
        patch was refused, the run did not take it) the driver writes the first status itself."""
        for _ in range(FIRST_FINALIZER_POLLS):
            if self.uid not in self.runtime.pickups or (self.body.get("status") or {}).get("phase") or stop():
                return
            await sleep(FIRST_FINALIZER_POLL_SECONDS)

    async def _until_finalizer(self, sleep: Sleep, stop: Callable[[], bool]) -> None:
        """Wait (briefly) for kopf's finalizer on a new run: kopf adds it right after starting the daemon, and a
        status written before would be refused for the change."""
        for _ in range(FIRST_FINALIZER_POLLS):
            if self._finalizer_present() or stop():
                return
            await sleep(FIRST_FINALIZER_POLL_SECONDS)

    async def _step(
        self, ctx: RunContext, status: TradingRunStatus, generation: int | None, *, deleting: bool
    ) -> tuple[TradingRunStatus, Any]:
        now = datetime.now(UTC)
        annotations = dict(self.body.metadata.annotations)
        if ctx.live:
            halt = await self._kill_switch_step(ctx, status, now, annotations, deleting=deleting)
            if halt.decision is not None:
                if not halt.decision.final:
                    await self._persist(halt.status)
                return halt.status, halt.decision
            status = halt.status
        # Approvals are read only at the gate, so an approval's time to live starts there, not earlier.
        before = Phase(status.phase)
        waiting = before is Phase.AWAITING_APPROVAL
        approval = current_approval(annotations, status.checkpoint, now, ctx.spec.approval.ttl) if waiting else None
        status, decision = await advance(
            ctx,
            status,
            now,
            cancel_requested=cancel_requested(annotations),
            deleting=deleting,
            approval=approval,
            generation=generation,
            persist=self._persist,
        )
        if decision.phase is Phase.AWAITING_APPROVAL and not waiting:
            self._note_approval_at_gate(status)
        note_spec_generation(status, self._generation(), now)
        await self._persist_step(status)
        set_run_fields(phase=status.phase)
        return status, decision

    # --- approvals and the kill switch ----------------------------------------------------------------------
    def _note_approval_at_gate(self, status: TradingRunStatus) -> None:
        """An approval already on the run when it reaches its gate was not given after the gates passed: it
        does not count (the chart's admission policy refuses such approvals; this holds without it too)."""
        annotations = dict(self.body.metadata.annotations)  # as they are now, after the step's work
        note_approval_at_gate(status.checkpoint, annotations)
        early = approval_before_gate(status.checkpoint)
        if early:
            self.events.emit(
                Phase.AWAITING_APPROVAL.value,
                "ApprovalIgnored",
                f"the approval by {early} was on the run before it reached its approval gate and does not count: "
                "remove traiding.io/approved-by, then approve again",
                level="warning",
            )

    async def _kill_switch_step(
        self,
        ctx: RunContext,
        status: TradingRunStatus,
        now: datetime,
        annotations: dict[str, str],
        *,
        deleting: bool,
    ) -> HaltResult:
        """A live run under a set kill switch: refused if it has not traded yet, else halted (see
        traiding.pipeline.halt); a decision of None lets the run take its normal step."""
        order = await self.runtime.kill_switches.engaged(self.namespace)
        phase = Phase(status.phase)
        if order is not None and phase in BEFORE_TRADING:
            because = f" ({order.reason})" if order.reason else ""
            message = f"the kill switch ({order.source}) is set{because}: live runs are refused until it is cleared"
            failed = fail_status(status, now, "KillSwitch", message, status.observedGeneration)
            await self._write_with_event(status, failed)
            return HaltResult(failed, Decision(Phase.FAILED, "KillSwitch", message))
        return await halt_step(
            ctx,
            status,
            now,
            order=order,
            resume=annotations.get(RESUME, "").strip(),
            stopping=deleting or cancel_requested(annotations),
            persist=self._persist,
        )

    async def _sleep_watching_kill_switch(
        self, sleep: Sleep, stop: Callable[[], bool], seconds: float, ctx: RunContext, status: TradingRunStatus
    ) -> None:
        """Sleep `seconds`; a live run that trades wakes within the kill switches' poll once one is set, however
        long its own polling interval (30 s on a real exchange's 5m candles)."""
        if not ctx.live or Phase(status.phase) not in HALTABLE or is_halted(status.checkpoint):
            await sleep(seconds)
            return
        switches = self.runtime.kill_switches
        deadline = time.monotonic() + seconds
        while not stop() and (left := deadline - time.monotonic()) > 0:
            await sleep(min(left, switches.poll_seconds))
            if await switches.engaged(self.namespace) is not None:
                return

    async def _persist(self, status: TradingRunStatus) -> None:
        """A status write, only while this process holds the Lease, guarded by the resourceVersion."""
        self.lease.check()
        await self.writer.write(status)
        self.throttle.written(status)

    async def _persist_step(self, status: TradingRunStatus) -> None:
        """The status after a step: at once when more than the session's progress changed, else at most every
        few seconds (status_throttle.py). Writes in the middle of a step (`_persist`) are never held back."""
        if self.throttle.due(status):
            await self._persist(status)

    def _spec(self, status: TradingRunStatus) -> TradingRunSpec:
        try:
            return TradingRunSpec.model_validate(status.checkpoint[SPEC_KEY])
        except ValidationError as error:
            raise RunStartError("InvalidSpec", f"the spec is invalid: {error}") from None

    async def _context(self, stack: AsyncExitStack, status: TradingRunStatus, spec: TradingRunSpec) -> RunContext:
        simulator_url = self._endpoint(spec)  # before anything is read or sent
        credentials, problem = await self._credentials(spec, Phase(status.phase))
        try:
            return await open_context(
                stack,
                self.runtime.hub,
                RunIdentity(self.name, str(status.checkpoint["runUid"])),
                spec,
                credentials=credentials,
                simulator_url=simulator_url,
                events=self.events,
                history=self.runtime.history,
                credentials_problem=problem,
            )
        except ExchangeLayerError as error:  # e.g. an exchange id ccxt does not know: it never will
            raise RunStartError(type(error).__name__, str(error)) from None

    async def _credentials(self, spec: TradingRunSpec, phase: Phase) -> tuple[Credentials | None, str | None]:
        """The run's credentials, or (None, why not) in the phases before the keys are needed: ApiCheck fails
        with the reason. Later, keys that cannot be read stop the run (or, holding positions, are retried)."""
        ref = spec.exchange.credentialsSecretRef
        if ref is None:
            return None, None
        settings = self.runtime.config
        try:
            policy = await read_keys_policy(
                self.runtime.kube,
                settings.operator_namespace,
                settings.keys_secret,
                require_encrypted=settings.require_encrypted_keys,
            )
            return await read_credentials(self.runtime.kube, self.namespace, ref, policy), None
        except CredentialsError as error:
            if phase in KEYLESS_PHASES:
                return None, str(error)
            raise RunStartError("CredentialsUnavailable", str(error)) from None

    def _endpoint(self, spec: TradingRunSpec) -> str | None:
        """The simulator's URL from the operator's allowlist (None for a real exchange, which must be allowed):
        a run whose spec names anything else fails here, before any request is sent."""
        settings = self.runtime.config
        try:
            if spec.exchange.simulator is None:
                settings.check_exchange(spec.exchange.id)
                return None
            return settings.simulator_url(spec.exchange.simulator.name)
        except EndpointNotAllowed as error:
            raise RunStartError(error.reason, str(error)) from None

    async def _write_with_event(self, before: TradingRunStatus, after: TradingRunStatus) -> None:
        """Write a phase change made outside the phase work, and say it through the run's event log like every
        phase change: a Kubernetes Event (a Warning when it failed), the log line, the metrics."""
        await self._persist(after)
        self.events.emit(
            after.phase,
            "PhaseChanged",
            f"{before.phase} -> {after.phase}: {after.message}",
            level="error" if after.phase == Phase.FAILED else "info",
            metrics={"from": before.phase, "to": after.phase, "reason": after.reason, "durationSeconds": None},
        )

    async def _give_up(self, error: Exception, failures: int) -> bool:
        """After `failures` unexpected errors in a row: a run that holds nothing fails with the reason (True);
        one holding positions says so on the object and keeps being retried (False): it must not be abandoned."""
        message = f"the operator failed {failures} times in a row driving this run: {type(error).__name__}: {error}"
        self.runtime.events.record(self.ref, "Warning", "OperatorError", message)
        try:
            if not await self.lease.try_acquire():
                return False
            status = await self._read()
            now = datetime.now(UTC)
            if Phase(status.phase) in TERMINAL:
                return True
            if holds_positions(status.checkpoint):
                await self._persist(note_operator_trouble(status, now, message))
                return False
            failed = fail_status(status, now, "OperatorError", message, status.observedGeneration)
            await self._write_with_event(status, failed)
        except Exception as second:  # the API server itself is the trouble: the next round tries again
            self.logger.warning(f"could not record the failure on the run: {second}")
            return False
        return True

    def _finalizer_present(self) -> bool:
        return self.runtime.finalizer in (self.body.metadata.get("finalizers") or [])

    def _generation(self) -> int | None:
        generation = self.body.metadata.get("generation")
        return int(generation) if generation is not None else None

"""Drives one TradingRun: build its context, call `advance`, write the status, wait, until the run is final.

Everything the next step needs is in the object's status (written after every step), so a new driver,
in this operator or a restarted one, continues where the last one stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client import ApiClient
from pydantic import ValidationError

from traiding.domain.candles import CandleCache
from traiding.domain.statemachine import TERMINAL, Phase
from traiding.pipeline.context import RunContext
from traiding.pipeline.events import EventLog
from traiding.pipeline.runner import advance
from traiding.pipeline.wiring import SPEC_KEY, RunIdentity, open_context, poll_seconds, wait_after
from traiding.resource import TradingRunSpec, TradingRunStatus
from traiding_adapters.connection import Credentials
from traiding_adapters.hub import ExchangeHub
from traiding_operator.annotations import cancel_requested
from traiding_operator.config import OperatorConfig
from traiding_operator.credentials import CredentialsError, read_credentials
from traiding_operator.kube_events import KubernetesEventSink
from traiding_operator.run_status import current_approval, fail_status, note_spec_generation
from traiding_operator.status_writer import StatusWriter

ANNOTATION_POLL_SECONDS = 1.0  # how soon an approval or cancel annotation is acted on while waiting

Logger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class OperatorRuntime:
    """What every run's driver shares: the API client, the exchange hub (one budget per key), the config."""

    api: ApiClient
    hub: ExchangeHub
    config: OperatorConfig


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
    def __init__(self, body: kopf.Body, runtime: OperatorRuntime, stopped: kopf.DaemonStopped, logger: Logger) -> None:
        self.body = body  # kopf keeps it current: annotations added later are seen here
        self.runtime = runtime
        self.stopped = stopped
        self.logger = logger
        self.name = str(body.metadata.name)
        self.namespace = str(body.metadata.namespace)
        self.writer = StatusWriter(runtime.api, self.namespace, self.name)

    async def run(self) -> None:
        now = datetime.now(UTC)
        status = initial_status(
            self.body.get("status"), str(self.body.metadata.uid), self._generation(), dict(self.body.spec)
        )
        if Phase(status.phase) in TERMINAL:
            return
        started_generation = status.observedGeneration
        try:
            spec = TradingRunSpec.model_validate(status.checkpoint[SPEC_KEY])
            credentials = await self._credentials(spec)
            simulator_url = self._simulator_url(spec)
        except RunStartError as error:
            await self._fail(status, now, error.reason, error.message, started_generation)
            return
        except ValidationError as error:
            await self._fail(status, now, "InvalidSpec", f"the spec is invalid: {error}", started_generation)
            return
        sink = KubernetesEventSink(self.body, self.logger)
        async with AsyncExitStack() as stack:
            ctx = await open_context(
                stack,
                self.runtime.hub,
                RunIdentity(self.name, str(status.checkpoint["runUid"])),
                spec,
                credentials=credentials,
                simulator_url=simulator_url,
                events=EventLog(self.name, [sink]),
                cache=CandleCache(self.runtime.config.cache_dir),
            )
            await self._loop(ctx, status, started_generation)

    async def _loop(self, ctx: RunContext, status: TradingRunStatus, started_generation: int | None) -> None:
        poll = poll_seconds(ctx.spec)
        while not self.stopped:
            now = datetime.now(UTC)
            annotations = dict(self.body.metadata.annotations)
            # Approvals are read only at the gate, so an approval's time to live starts there, not earlier.
            waiting = Phase(status.phase) is Phase.AWAITING_APPROVAL
            approval = current_approval(annotations, status.checkpoint, now, ctx.spec.approval.ttl) if waiting else None
            status, decision = await advance(
                ctx,
                status,
                now,
                cancel_requested=cancel_requested(annotations),
                approval=approval,
                generation=started_generation,
            )
            note_spec_generation(status, self._generation(), now)
            await self.writer.write(status)
            if decision.final:
                self.logger.info(f"run finished: {decision.phase}: {decision.message}")
                return
            wait = wait_after(decision, poll)
            if decision.phase is Phase.AWAITING_APPROVAL:
                wait = min(wait, ANNOTATION_POLL_SECONDS)
            await self.stopped.wait(wait)

    async def _credentials(self, spec: TradingRunSpec) -> Credentials | None:
        ref = spec.exchange.credentialsSecretRef
        if ref is None:
            return None
        try:
            return await read_credentials(self.runtime.api, self.namespace, ref)
        except CredentialsError as error:
            raise RunStartError("CredentialsUnavailable", str(error)) from None

    def _simulator_url(self, spec: TradingRunSpec) -> str | None:
        simulator = spec.exchange.simulator
        if simulator is None:
            return None
        url = simulator.url or self.runtime.config.simulator_url
        if not url:
            raise RunStartError(
                "SimulatorNotConfigured",
                "the run uses the exchange simulator but names no spec.exchange.simulator.url, and the operator "
                "has no simulator configured (TRAIDING_SIMULATOR_URL)",
            )
        return url

    async def _fail(
        self, status: TradingRunStatus, now: datetime, reason: str, message: str, generation: int | None
    ) -> None:
        failed = fail_status(status, now, reason, message, generation)
        await self.writer.write(failed)
        kopf.event(self.body, type="Warning", reason="PhaseChanged", message=f"{status.phase} -> Failed: {message}")
        self.logger.info(f"run failed before its phase work: {reason}: {message}")

    def _generation(self) -> int | None:
        generation = self.body.metadata.get("generation")
        return int(generation) if generation is not None else None

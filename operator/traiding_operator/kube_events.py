"""Mirrors a run's pipeline events to Kubernetes Events (what `kubectl describe` shows) and to the log.

Phase changes, the session's start, fills and every warning or error become Events; the rest (progress,
checks) only goes to the log. Messages come from the phase code, which never includes secrets.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from traiding.pipeline.events import Event

POSTED_TYPES = frozenset({"PhaseChanged", "SessionStarted", "OrderFilled", "KillSwitch", "Approved"})
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
MAX_MESSAGE = 1000  # the API server refuses longer Event messages


class KubernetesEventSink:
    def __init__(self, body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        self.body = body
        self.logger = logger

    def emit(self, event: Event) -> None:
        level = LEVELS[event.level]
        # The object logger would post warnings as Events itself; this sink posts them, so log them at INFO there.
        self.logger.log(
            min(level, logging.INFO),
            event.message,
            extra={"phase": event.phase, "event_type": event.type, "metrics": event.metrics},
        )
        if event.type in POSTED_TYPES or level >= logging.WARNING:
            message = event.message
            client_order_id = event.metrics.get("client_order_id")
            if client_order_id:
                message = f"{message} (client order id {client_order_id})"  # to find the order on the exchange
            kopf.event(
                self.body,
                type="Warning" if level >= logging.WARNING else "Normal",
                reason=event.type,
                message=message[:MAX_MESSAGE],
            )

"""One logging setup (python-json-logger) for both drivers, with secrets redacted from every line.

- In the cluster (`traiding operator`): JSON lines on stdout, each with the `run`, `namespace`, `phase` and
  `exchange` of the run whose task logged it (context variables, set per run by its driver).
- `traiding run`: JSON lines in rotating files (10 MB, 5 backups) in `<output>/logs/`: `trading.log`
  (orders, fills, the session's decisions), `system.log` (everything else) and `errors.log` (warnings and
  errors from anywhere).

`RedactSecrets` runs on every handler before formatting. It replaces every registered secret value (API
keys and secrets, registered by the drivers when they read them) and anything that looks like a request
signature or a key header, in the message, its arguments, extra fields and tracebacks.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from logging.handlers import RotatingFileHandler
from pathlib import Path
from threading import Lock
from typing import Any, Protocol, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
TRADING_LOGGER = "traiding.trading"  # orders and fills: trading.log
TRADING_LOGGERS = (TRADING_LOGGER, "traiding_adapters.orders")  # the session's events, order placement
EVENTS_LOGGER = "traiding.events"
# Event types of the trading session that belong in trading.log.
TRADING_EVENT_TYPES = frozenset(
    {"SessionStarted", "OrderFilled", "OrderRejected", "OrderRecovered", "OrderNotPlaced", "EntrySkipped", "KillSwitch"}
)
_NOISY_LOGGERS = ("aiohttp.access", "urllib3", "kubernetes.client.rest")

_PATTERNS = (
    re.compile(r"(?i)(signature=)[0-9a-f]{16,}"),
    re.compile(r"(?i)(x-mbx-apikey['\"]?\s*[:=]\s*['\"]?)[^'\"\s,;}&]+"),
    # key=value and "key": "value" spellings of credentials, e.g. in an echoed request or a repr.
    re.compile(r"(?i)((?:api_?key|secret|password)['\"]?\s*[:=]\s*['\"]?)[^'\"\s,;}&]{6,}"),
)
_STANDARD_ATTRS = frozenset(RESERVED_ATTRS) | {"message", "asctime"}

_run_fields: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "traiding_run_fields", default=None
)


class SecretRegistry:
    """The secret values this process knows; they are replaced wherever they would be logged."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            self._values.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)

    def redact(self, text: str) -> str:
        # Longest first: a secret that contains another is replaced whole.
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text


SECRETS = SecretRegistry()


def register_secret(*values: str | None) -> None:
    """Never log these values (API keys, secrets, passwords) from now on."""
    SECRETS.add(*values)


def _redact_value(value: Any, registry: SecretRegistry) -> Any:
    if isinstance(value, str):
        return registry.redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v, registry) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v, registry) for v in value]
    return value


class RedactSecrets(logging.Filter):
    """Redacts secrets from a record's message, arguments, extra fields, traceback and stack (see module doc)."""

    def __init__(self, registry: SecretRegistry = SECRETS) -> None:
        super().__init__()
        self.registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.registry.redact(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS:
                record.__dict__[key] = _redact_value(value, self.registry)
        if record.exc_info:
            record.exc_text = self.registry.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.registry.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.registry.redact(record.stack_info)
        return True


class RunFields(logging.Filter):
    """Adds the current run's fields (run, namespace, phase, exchange) to records that lack them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_run_fields.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def set_run_fields(**fields: str | None) -> None:
    """Set run fields for the current task (and what it starts): e.g. the phase after each step."""
    merged = dict(_run_fields.get() or {})
    merged.update({k: v for k, v in fields.items() if v is not None})
    _run_fields.set(merged)


@contextmanager
def run_fields(**fields: str | None) -> Iterator[None]:
    token = _run_fields.set({k: v for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        _run_fields.reset(token)


# Extras kopf's object loggers add that are no log content: its settings object (not serialisable) and a
# flag for its own Event poster. `k8s_ref` (the object's reference) stays.
_KOPF_EXTRAS = ("settings", "k8s_skip")


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        reserved_attrs=[*RESERVED_ATTRS, *_KOPF_EXTRAS],
    )


def _prepared(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(json_formatter())
    handler.addFilter(RunFields())
    handler.addFilter(RedactSecrets())
    return handler


def _quiet_noisy(level: int) -> None:
    # Per-request lines of the HTTP clients would drown the runs' own lines.
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def configure_stream_logging(level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """JSON lines on `stream` (stdout by default), the only handler: the operator in a cluster."""
    handler = _prepared(logging.StreamHandler(stream or sys.stdout))
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _quiet_noisy(level)
    return handler


class _OnlyTrading(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return any(record.name == name or record.name.startswith(name + ".") for name in TRADING_LOGGERS)


class _NotTrading(_OnlyTrading):
    def filter(self, record: logging.LogRecord) -> bool:
        return not super().filter(record)


def log_file_handlers(folder: Path) -> list[logging.Handler]:
    """trading.log, system.log and errors.log in `folder`, each rotating at 10 MB with 5 backups."""
    folder.mkdir(parents=True, exist_ok=True)

    def rotating(name: str) -> RotatingFileHandler:
        return RotatingFileHandler(
            folder / name, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )

    trading, system, errors = rotating("trading.log"), rotating("system.log"), rotating("errors.log")
    trading.addFilter(_OnlyTrading())
    system.addFilter(_NotTrading())
    errors.setLevel(logging.WARNING)
    return [_prepared(handler) for handler in (trading, system, errors)]


@contextmanager
def file_logging(folder: Path, level: int = logging.INFO) -> Iterator[list[logging.Handler]]:
    """`traiding run`: the rotating files in `folder` (see module doc) while the block runs.

    Added beside any handlers already there (a test's capture, say), and removed again afterwards.
    """
    handlers = log_file_handlers(folder)
    root = logging.getLogger()
    previous = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    _quiet_noisy(level)
    try:
        yield handlers
    finally:
        root.setLevel(previous)
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


class LoggedEvent(Protocol):
    """A pipeline event (traiding.pipeline.events.Event) as far as logging reads it."""

    @property
    def run(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def level(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, Any]: ...


class LogSink:
    """An event sink that writes each pipeline event as a log line: session events to trading.log."""

    LEVELS: Mapping[str, int] = {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
    }

    def __init__(self) -> None:
        self._trading = logging.getLogger(TRADING_LOGGER)
        self._events = logging.getLogger(EVENTS_LOGGER)

    def emit(self, event: LoggedEvent) -> None:
        logger = self._trading if event.type in TRADING_EVENT_TYPES else self._events
        logger.log(
            self.LEVELS.get(event.level, logging.INFO),
            event.message,
            extra={"run": event.run, "phase": event.phase, "event_type": event.type, "metrics": event.metrics},
        )

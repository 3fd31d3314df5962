"""The logging setup: JSON lines with the run's fields, secrets redacted everywhere in a record, and the
rotating trading/system/errors files of `traiding run`."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import pytest

from traiding.pipeline.events import EventLog
from traiding.telemetry.logs import (
    REDACTED,
    LogSink,
    RedactSecrets,
    SecretRegistry,
    configure_stream_logging,
    file_logging,
    run_fields,
    set_run_fields,
)
from traiding_adapters.connection import Credentials

SECRET, KEY = "s3cr3t-value-91", "api-key-value-42"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    previous = logging.getLogger().handlers[:], logging.getLogger().level
    configure_stream_logging(logging.DEBUG, stream=stream)
    try:
        yield stream
    finally:
        logging.getLogger().handlers[:], level = previous
        logging.getLogger().setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def redacting(registry: SecretRegistry) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(registry))
    handler.setFormatter(logging.Formatter("%(message)s %(extra_field)s"))
    logger = logging.getLogger(f"test.redact.{id(registry)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_registered_secrets_are_redacted_from_message_arguments_extras_and_tracebacks() -> None:
    registry = SecretRegistry()
    registry.add(KEY, SECRET)
    logger, stream = redacting(registry)
    logger.info("key %s and secret %s", KEY, SECRET, extra={"extra_field": {"nested": [f"x{SECRET}y"]}})
    try:
        raise ValueError(f"the exchange echoed {SECRET}")
    except ValueError:
        logger.exception("failed", extra={"extra_field": "-"})
    text = stream.getvalue()
    assert KEY not in text and SECRET not in text
    assert text.count(REDACTED) == 4
    assert "ValueError: the exchange echoed [REDACTED]" in text


def test_signatures_and_key_headers_are_redacted_without_registration() -> None:
    logger, stream = redacting(SecretRegistry())
    logger.warning(
        "GET /api/v3/account?timestamp=1&signature=0123456789abcdef0123456789abcdef {'X-MBX-APIKEY': 'abcdefgh'} "
        "apiKey=zzzzzzzz secret: 'yyyyyyyy'",
        extra={"extra_field": ""},
    )
    text = stream.getvalue()
    assert "0123456789abcdef" not in text and "abcdefgh" not in text
    assert "zzzzzzzz" not in text and "yyyyyyyy" not in text
    assert "signature=[REDACTED]" in text


def test_short_values_are_not_treated_as_secrets() -> None:
    registry = SecretRegistry()
    registry.add("abc", None, "")
    assert registry.redact("abc is a word") == "abc is a word"


def test_the_credentials_repr_hides_the_secret() -> None:
    assert SECRET not in repr(Credentials(api_key=KEY, secret=SECRET))


def test_json_lines_carry_the_runs_fields(json_lines: io.StringIO) -> None:
    log = logging.getLogger("traiding.test")
    log.info("outside a run")

    async def a_run(name: str) -> None:
        with run_fields(run=name, namespace="ns", exchange="binance", phase="DataCheck"):
            await asyncio.sleep(0)
            set_run_fields(phase="Backtest")
            log.info("inside", extra={"detail": 1})

    async def both() -> None:
        await asyncio.gather(a_run("one"), a_run("two"))  # each task keeps its own fields

    asyncio.run(both())
    first, *inside = [line for line in lines(json_lines) if line["logger"] == "traiding.test"]
    assert "run" not in first and first["message"] == "outside a run"
    assert {(line["run"], line["phase"], line["namespace"], line["exchange"]) for line in inside} == {
        ("one", "Backtest", "ns", "binance"),
        ("two", "Backtest", "ns", "binance"),
    }
    assert set(inside[0]) >= {"time", "level", "logger", "message", "detail"}


def test_an_explicit_field_wins_over_the_context(json_lines: io.StringIO) -> None:
    with run_fields(run="r", phase="Trading"):
        logging.getLogger("traiding.test").info("event", extra={"phase": "Reporting"})
    assert lines(json_lines)[0]["phase"] == "Reporting"


def test_traiding_run_files_split_trading_system_and_errors(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    root = logging.getLogger()
    before = root.handlers[:]
    with file_logging(folder, logging.INFO) as handlers:
        assert all(isinstance(h, RotatingFileHandler) for h in handlers)
        assert {(h.maxBytes, h.backupCount) for h in handlers if isinstance(h, RotatingFileHandler)} == {
            (10 * 1024 * 1024, 5)
        }
        events = EventLog("eth-run", [LogSink()])
        events.emit("Trading", "OrderFilled", "bought 0.1 ETH/USDT", metrics={"client_order_id": "t1-0"})
        events.emit("Trading", "ExchangeError", "binance 503", level="warning")
        events.emit("DataCheck", "DataQuality", "8640 candles")
        logging.getLogger("traiding_adapters.orders").warning("order t1-1: outcome unknown; looking it up")
        logging.getLogger("traiding.test").debug("below the level")
    assert root.handlers == before  # removed again
    read = {
        name: [json.loads(line) for line in (folder / name).read_text().splitlines()]
        for name in ("trading.log", "system.log", "errors.log")
    }
    assert [line["message"] for line in read["trading.log"]] == [
        "bought 0.1 ETH/USDT",
        "order t1-1: outcome unknown; looking it up",
    ]
    assert [line["message"] for line in read["system.log"]] == ["binance 503", "8640 candles"]
    assert [line["message"] for line in read["errors.log"]] == [
        "binance 503",
        "order t1-1: outcome unknown; looking it up",
    ]
    filled = read["trading.log"][0]
    assert (filled["run"], filled["phase"], filled["event_type"]) == ("eth-run", "Trading", "OrderFilled")
    assert filled["metrics"] == {"client_order_id": "t1-0"}

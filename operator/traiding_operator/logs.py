"""JSON log lines for the operator (one object per line: time, level, logger, message and kopf's object reference)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def configure_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request lines of the HTTP clients would drown the runs' own lines.
    for noisy in ("aiohttp.access", "urllib3", "kubernetes.client.rest"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

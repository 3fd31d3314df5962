"""JSON log lines for the operator (one object per line: time, level, logger, message and kopf's object reference)."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# kopf's object loggers add these to every record: its settings object (not JSON) and a skip marker.
KOPF_INTERNAL_ATTRS = ("settings", "k8s_skip")


def configure_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
            reserved_attrs=[*RESERVED_ATTRS, *KOPF_INTERNAL_ATTRS],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request lines of the HTTP clients would drown the runs' own lines.
    for noisy in ("aiohttp.access", "urllib3", "kubernetes.client.rest"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

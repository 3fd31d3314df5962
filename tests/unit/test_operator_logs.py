"""The operator's JSON log lines stay JSON when kopf's object loggers add their own extras."""

from __future__ import annotations

import dataclasses
import json
import logging
import queue

import pytest

from traiding_operator.logs import configure_json_logging


@dataclasses.dataclass
class KopfLikeSettings:
    events: queue.SimpleQueue[object]  # kopf's settings hold queues: not JSON, not even deep-copyable


def test_a_record_with_kopfs_extras_is_one_json_line_with_the_object_reference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_json_logging()
    extra = {"settings": KopfLikeSettings(queue.SimpleQueue()), "k8s_skip": False, "k8s_ref": {"name": "eth-live"}}
    logging.getLogger("traiding_operator.test").info("bought 0.1 ETH/USDT", extra=extra)
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["message"], record["k8s_ref"]) == ("bought 0.1 ETH/USDT", {"name": "eth-live"})
    assert "settings" not in record and "k8s_skip" not in record

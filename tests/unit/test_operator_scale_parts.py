"""The operator's parts for many runs at once: shards, the status throttle."""

from __future__ import annotations

import pytest

from traiding.resource import PhaseRecord, TradingRunStatus
from traiding_operator.shards import SHARD_KEY, Shard, in_shard
from traiding_operator.status_throttle import StatusThrottle


def test_an_operator_without_a_shard_serves_every_run() -> None:
    everything = Shard()
    assert everything.owns(None) and everything.owns("a") and everything.owns("b")
    assert everything.describe() == "every run"


def test_a_shard_serves_its_label_and_the_default_shard_also_the_unlabelled_runs() -> None:
    a, b = Shard("a", default=True), Shard("b")
    assert a.owns("a") and a.owns(None) and not a.owns("b")
    assert b.owns("b") and not b.owns(None) and not b.owns("a")
    assert a.describe() == "traiding.io/shard=a and runs without the label"
    assert b.describe() == "traiding.io/shard=b"


@pytest.mark.parametrize("name", ["", "-a", "a-", "a b", "x" * 64, "a/b"])
def test_a_shard_name_must_be_a_label_value(name: str) -> None:
    with pytest.raises(ValueError, match="is not a label value"):
        Shard(name)


def test_only_a_named_shard_can_be_the_default() -> None:
    with pytest.raises(ValueError, match="only a named shard"):
        Shard(None, default=True)


def test_kopfs_label_filter_follows_the_shard_in_the_memo() -> None:
    memo = {SHARD_KEY: Shard("b")}
    assert in_shard("b", memo) and not in_shard("a", memo) and not in_shard(None, memo)
    assert in_shard("anything", {}) and in_shard(None, None)  # no shard configured: every run


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def trading(equity: list[list[float]], positions: dict[str, float] | None = None) -> TradingRunStatus:
    session = {"started_ms": 1, "equity": equity, "last_closed": {"X": equity[-1][0]}, "positions": positions or {}}
    return TradingRunStatus(
        phase="Trading", phases={"Trading": PhaseRecord(state="Running")}, checkpoint={"session": session}
    )


def test_progress_alone_is_written_at_most_every_interval() -> None:
    clock = Clock()
    throttle = StatusThrottle(interval_s=5.0, clock=clock)
    throttle.written(trading([[1, 100.0]]))
    clock.now += 1
    assert not throttle.due(trading([[1, 100.0], [2, 101.0]]))
    assert throttle.pending
    clock.now += 3.9
    assert not throttle.due(trading([[1, 100.0], [2, 101.0], [3, 99.0]]))
    clock.now += 0.1
    assert throttle.due(trading([[1, 100.0], [2, 101.0], [3, 99.0], [4, 98.0]]))
    assert not throttle.pending


def test_a_change_the_money_path_keeps_or_a_phase_change_is_written_at_once() -> None:
    clock = Clock()
    throttle = StatusThrottle(interval_s=5.0, clock=clock)
    throttle.written(trading([[1, 100.0]]))
    clock.now += 0.1
    assert throttle.due(trading([[1, 100.0]], positions={"X": 0.5}))  # a position opened
    throttle.written(trading([[1, 100.0]], positions={"X": 0.5}))
    clock.now += 0.1
    reporting = trading([[1, 100.0]], positions={"X": 0.5})
    reporting.phase = "Reporting"
    assert throttle.due(reporting)
    clock.now += 0.1
    failed_record = trading([[1, 100.0]], positions={"X": 0.5})
    failed_record.phases["Trading"].attempts = 2
    assert throttle.due(failed_record)
    clock.now += 0.1
    worded = trading([[1, 100.0], [2, 100.5]], positions={"X": 0.5})
    worded.message = "42 candles in"  # the progress line is progress
    assert not throttle.due(worded)

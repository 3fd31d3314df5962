"""A new run's first status as kopf sends it (`RunDriver.pick_up`): the patch function kopf applies to the object
as it last saw it, again on a later cycle if the patch was refused, only ever gives a status to a run of this
shard that has no phase and is not being deleted."""

from __future__ import annotations

import copy
import functools
from typing import Any

import jsonpatch

from traiding_operator.driver import put_first_status
from traiding_operator.handlers import unpicked
from traiding_operator.shards import SHARD_KEY, SHARD_LABEL, Shard

FIRST = {"phase": "DataCheck", "phases": {"DataCheck": {"state": "Running", "startedAt": "2026-12-02T06:00:00Z"}}}


def run(**metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "traiding.io/v1alpha1", "kind": "TradingRun", "metadata": {"name": "r", **metadata}}


def ops_after(body: dict[str, Any], memo: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch kopf would send: the difference the function makes to a copy of the body."""
    changed = copy.deepcopy(body)
    put_first_status(FIRST, functools.partial(unpicked, memo=memo), changed)
    return list(jsonpatch.JsonPatch.from_diff(body, changed))


def test_a_new_run_of_the_shard_gets_the_first_status_and_nothing_else() -> None:
    memo = {SHARD_KEY: Shard("blue")}
    ops = ops_after(run(labels={SHARD_LABEL: "blue"}), memo)
    assert ops == [{"op": "add", "path": "/status", "value": FIRST}]


def test_a_run_with_a_phase_a_deleted_run_and_another_shards_run_get_nothing() -> None:
    memo = {SHARD_KEY: Shard("blue")}
    driven = {**run(labels={SHARD_LABEL: "blue"}), "status": {"phase": "Backtest", "message": "driven on"}}
    assert ops_after(driven, memo) == [], "a patch kopf applies again later never sets a status back"
    deleting = run(labels={SHARD_LABEL: "blue"}, deletionTimestamp="2026-12-02T06:00:01Z")
    assert ops_after(deleting, memo) == []
    assert ops_after(run(labels={SHARD_LABEL: "green"}), memo) == [], "relabelled into another shard"
    assert ops_after(run(), memo) == [], "unlabelled, and blue is not the default shard"
    assert ops_after(run(), {SHARD_KEY: Shard("blue", default=True)}) != []
    assert ops_after(run(), {}) != [], "an operator without shards serves every run"

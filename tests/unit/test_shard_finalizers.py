"""Each shard's operator has a finalizer of its own: kopf takes its finalizer off every run none of its handlers
needs it on, so operators of two shards sharing one name took it off each other's runs again and again (measured:
a run alone took 408 s and 13,000 API requests with two shards). Another traiding operator's finalizer left on a
run (from before the runs were sharded, or of another shard) comes off once the run is finished or its own
operator's guards it, and a deleted run only such a finalizer guards is deleted by the operator of its shard."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from traiding_operator.handlers import (
    FINALIZER,
    FinalizerAction,
    drop_foreign_finalizers,
    finalizer_action,
    foreign_finalizers,
)
from traiding_operator.shards import SHARD_KEY, SHARD_LABEL, Shard

QUALIFIED_NAME = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def test_an_operator_of_every_run_keeps_the_one_finalizer() -> None:
    assert Shard().finalizer(FINALIZER) == FINALIZER == "operator.traiding.io/finalizer"


@pytest.mark.parametrize("name", ["a", "blue", "Shard_1.x", "s" * 53, "s" * 54, "x" * 63, "y" * 63])
def test_each_shard_has_a_finalizer_of_its_own_that_the_api_server_accepts(name: str) -> None:
    own = Shard(name).finalizer(FINALIZER)
    assert own != FINALIZER
    assert QUALIFIED_NAME.fullmatch(own), own
    assert len(own.split("/", 1)[1]) <= 63
    assert own == Shard(name, default=True).finalizer(FINALIZER), "the default shard is still its shard"


def test_shards_never_share_a_finalizer() -> None:
    names = ["a", "b", "A", "a.b", "a-b", "s" * 53, "s" * 54, "x" * 63, "y" * 63, "x" * 62 + "y"]
    finalizers = {Shard(name).finalizer(FINALIZER) for name in names}
    assert len(finalizers) == len(names)


BLUE = Shard("blue").finalizer(FINALIZER)
GREEN = Shard("green").finalizer(FINALIZER)


def run(phase: str | None, finalizers: list[str], *, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "r", "finalizers": finalizers}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-02T17:00:00Z"
    return {"metadata": metadata, "status": {"phase": phase} if phase else {}}


def action(body: dict[str, Any], own: str = BLUE) -> FinalizerAction | None:
    return finalizer_action(body, own)


def test_foreign_finalizers_are_the_other_traiding_operators_only() -> None:
    body = run("Trading", [FINALIZER, BLUE, GREEN, "example.com/keep", f"{FINALIZER}x"])
    assert foreign_finalizers(body, BLUE) == [FINALIZER, GREEN]
    assert foreign_finalizers(body, FINALIZER) == [BLUE, GREEN], "an operator of every run: the shards' ones"


def test_a_finished_run_loses_the_foreign_finalizers_and_keeps_the_rest() -> None:
    body = run("Succeeded", [FINALIZER, "example.com/keep", GREEN])
    assert action(body) is FinalizerAction.DROP
    assert action(run("Failed", [GREEN], deleting=True)) is FinalizerAction.DROP, "deleted: it can go now"
    changed = copy.deepcopy(body)
    drop_foreign_finalizers(changed, BLUE, {SHARD_KEY: Shard("blue", default=True)})  # unlabelled: in the shard
    assert changed["metadata"]["finalizers"] == ["example.com/keep"]
    assert changed["metadata"]["name"] == "r" and changed["status"] == body["status"], "only the finalizers"


def test_an_unfinished_run_keeps_a_foreign_finalizer_until_its_own_operators_guards_it() -> None:
    assert action(run("Trading", [FINALIZER])) is None, "kopf puts the own one on in this cycle"
    assert action(run("Trading", [FINALIZER, BLUE])) is FinalizerAction.DROP
    assert action(run("Trading", [BLUE])) is None, "nothing foreign"
    assert action(run("Trading", [FINALIZER, BLUE], deleting=True)) is FinalizerAction.DROP, (
        "kopf's deletion handler runs for it (the own finalizer is there)"
    )


def test_a_deleted_run_only_a_foreign_finalizer_guards_is_deleted_here() -> None:
    """Deleted before this operator put its own finalizer on (e.g. while the operators were replaced by
    shards): kopf would never run the deletion handler, and the run would stay Terminating, unclosed."""
    assert action(run("Trading", [FINALIZER], deleting=True)) is FinalizerAction.ADOPT
    assert action(run("Liquidating", [GREEN, "example.com/keep"], deleting=True)) is FinalizerAction.ADOPT
    assert action(run("Trading", ["example.com/keep"], deleting=True)) is None, "not ours to handle"


def test_the_patch_decides_again_on_the_run_kopf_applies_it_to() -> None:
    """Kopf applies a refused patch function again to a newer version of the run, without asking the handler."""
    memo = {SHARD_KEY: Shard("blue")}
    unguarded = run("Trading", [FINALIZER])  # blue's own finalizer is gone by now: the foreign one guards it
    relabelled = run("Succeeded", [FINALIZER])
    relabelled["metadata"]["labels"] = {SHARD_LABEL: "green"}
    for newer in (unguarded, relabelled):
        changed = copy.deepcopy(newer)
        drop_foreign_finalizers(changed, BLUE, memo)
        assert changed == newer

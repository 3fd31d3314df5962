"""Sharding runs across operator Deployments by a label: each operator drives only the runs of its shard.

A run's shard is its `traiding.io/shard` label. An operator started with `--shard NAME` serves the runs
labelled `traiding.io/shard=NAME`; with `--default-shard` as well, also the runs without the label (so a
cluster with shards still serves runs nobody labelled: exactly one shard should be the default). An operator
without `--shard` serves every run, labelled or not: the single Deployment of a cluster without shards.

kopf applies the filter to the daemon and the deletion handler (so it puts its finalizer only on its shard's
runs) and the metrics follow it too. A run relabelled into another shard is handed over: kopf stops its
daemon here, the other shard's operator starts one, and the run's Lease makes the hand-over clean. A run
labelled with a shard no operator serves waits in Pending until one does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SHARD_LABEL = "traiding.io/shard"
SHARD_KEY = "shard"  # in kopf's memo: this operator's Shard
# A label value: at most 63 characters, alphanumerics with -, _ and . inside.
SHARD_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
QUALIFIED_NAME_MAX = 63  # the name part of a finalizer (after the prefix's "/")


@dataclass(frozen=True)
class Shard:
    name: str | None = None  # None: every run
    default: bool = False  # also the runs without the label

    def __post_init__(self) -> None:
        if self.name is not None and not SHARD_NAME.fullmatch(self.name):
            raise ValueError(f"shard name {self.name!r} is not a label value (up to 63 letters, digits, '-', '_', '.')")
        if self.default and self.name is None:
            raise ValueError("only a named shard can be the default shard")

    def owns(self, label: str | None) -> bool:
        """Whether a run with this `traiding.io/shard` label value (None: no label) belongs to the shard."""
        if self.name is None:
            return True
        return label == self.name or (label is None and self.default)

    def finalizer(self, base: str) -> str:
        """This operator's finalizer (`base`, "prefix/name", for an operator of every run): one of its own per
        shard. Kopf takes its finalizer off a run that none of its handlers needs it on, so operators of other
        shards sharing one name would take it off each other's runs, again and again."""
        if self.name is None:
            return base
        prefix, name = base.split("/", 1)
        own = f"{name}.{self.name}"
        if len(own) > QUALIFIED_NAME_MAX:  # a long shard name: its digest, as unique in practice
            own = f"{name}.{hashlib.sha256(self.name.encode()).hexdigest()[:16]}"
        return f"{prefix}/{own}"

    def describe(self) -> str:
        if self.name is None:
            return "every run"
        return f"{SHARD_LABEL}={self.name}" + (" and runs without the label" if self.default else "")


def in_shard(value: str | None, memo: Mapping[str, Any] | None = None, **_: Any) -> bool:
    """kopf's label filter: whether the run's label value is this operator's shard."""
    shard = (memo or {}).get(SHARD_KEY)
    return shard.owns(value) if isinstance(shard, Shard) else True

"""Reads a run and writes its status through the `/status` subresource, guarded by the resourceVersion.

A replace (PUT) rather than a merge patch: the checkpoint holds explicit nulls that a merge patch would read
as "delete", and keys that disappear must disappear. Every write carries the resourceVersion of the object
the step started from (or of its own last write): if anything changed the object since (another driver's
write, an annotation), the API server refuses it with 409 and `StatusConflict` ends the step. Nothing is
overwritten and no order is sent on a stale view; the driver reads the object again and continues from
what is stored, reconciling whatever the lost step may have sent.

Between writes it keeps only what the next one needs: the object's identity and resourceVersion (the /status
subresource takes nothing but the status from a PUT) and a digest of the status last written. Not the whole
object: with hundreds of runs, a copy of each one's object would be most of the operator's memory.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from traiding.resource import API_GROUP, API_VERSION, PLURAL, TradingRunStatus
from traiding_operator.kube import KubeCalls


class StatusConflict(Exception):
    """The run changed since this step read it: the step's view is stale."""


class RunGone(Exception):
    """The TradingRun no longer exists."""


def digest(status: Any) -> bytes:
    """A short fingerprint of a status as JSON: equal statuses, equal digests."""
    text = json.dumps(status, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def head_of(obj: dict[str, Any]) -> dict[str, Any]:
    """What a PUT to /status needs besides the status: the object's identity and resourceVersion."""
    metadata = obj.get("metadata") or {}
    kept = {key: metadata[key] for key in ("name", "namespace", "uid", "resourceVersion") if key in metadata}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept}


class StatusWriter:
    def __init__(self, kube: KubeCalls, namespace: str, name: str) -> None:
        self.kube = kube
        self.api = CustomObjectsApi(kube.api)
        self.namespace = namespace
        self.name = name
        self._head: dict[str, Any] | None = None  # the next write's guard (None: read first)
        self._written: bytes | None = None  # digest of the status the object holds

    async def read(self) -> dict[str, Any]:
        """The run as stored now; later writes are guarded by its resourceVersion."""
        try:
            obj = await self.kube.call(
                self.api.get_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace, PLURAL, self.name
            )
        except ApiException as error:
            if error.status == 404:
                raise RunGone(f"TradingRun {self.namespace}/{self.name} no longer exists") from None
            raise
        return self.adopt(cast(dict[str, Any], obj))

    def adopt(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Start from `obj` as if just read (e.g. the object kopf's watch delivered): no request."""
        self._head = head_of(obj)
        self._written = digest(obj.get("status"))
        return obj

    async def write(self, status: TradingRunStatus) -> None:
        """Replace the status (no request when nothing changed)."""
        payload = status.model_dump(mode="json", exclude_none=True)
        written = digest(payload)
        if written == self._written:
            return  # e.g. a run waiting for its approval: nothing new to say, no API call
        if self._head is None:
            raise StatusConflict("no object was read for this step")
        body = {**self._head, "status": payload}
        try:
            response = await self.kube.call(
                self.api.replace_namespaced_custom_object_status,
                API_GROUP,
                API_VERSION,
                self.namespace,
                PLURAL,
                self.name,
                body,
            )
        except ApiException as error:
            if error.status == 409:
                self._head = None
                raise StatusConflict(
                    f"TradingRun {self.namespace}/{self.name} changed since this step read it (409)"
                ) from None
            if error.status == 404:
                raise RunGone(f"TradingRun {self.namespace}/{self.name} no longer exists") from None
            raise
        self._head = head_of(cast(dict[str, Any], response))
        self._written = written

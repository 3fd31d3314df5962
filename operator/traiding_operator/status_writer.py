"""Reads a run and writes its status through the `/status` subresource, guarded by the resourceVersion.

A replace (PUT) rather than a merge patch: the checkpoint holds explicit nulls that a merge patch would read
as "delete", and keys that disappear must disappear. Every write carries the resourceVersion of the object
the step started from (or of its own last write): if anything changed the object since (another driver's
write, an annotation), the API server refuses it with 409 and `StatusConflict` ends the step. Nothing is
overwritten and no order is sent on a stale view; the driver reads the object again and continues from
what is stored, reconciling whatever the lost step may have sent.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes.client import CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from traiding.resource import API_GROUP, API_VERSION, PLURAL, TradingRunStatus
from traiding_operator.kube import KubeCalls


class StatusConflict(Exception):
    """The run changed since this step read it: the step's view is stale."""


class RunGone(Exception):
    """The TradingRun no longer exists."""


class StatusWriter:
    def __init__(self, kube: KubeCalls, namespace: str, name: str) -> None:
        self.kube = kube
        self.api = CustomObjectsApi(kube.api)
        self.namespace = namespace
        self.name = name
        self._object: dict[str, Any] | None = None
        self._written: dict[str, Any] | None = None

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
        self._object = cast(dict[str, Any], obj)
        self._written = self._object.get("status")
        return self._object

    def adopt(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Start from `obj` as if just read (the object kopf's watch delivered): no request."""
        self._object = obj
        self._written = obj.get("status")
        return obj

    async def write(self, status: TradingRunStatus, *, urgent: bool = False) -> None:
        """Replace the status (no request when nothing changed); `urgent`: on the pool kept for calls that must
        not wait behind the other runs' writes (a run's first status)."""
        payload = status.model_dump(mode="json", exclude_none=True)
        if payload == self._written:
            return  # e.g. a run waiting for its approval: nothing new to say, no API call
        if self._object is None:
            raise StatusConflict("no object was read for this step")
        body = {**self._object, "status": payload}
        try:
            call = self.kube.call_urgent if urgent else self.kube.call
            written = await call(
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
                self._object = None
                raise StatusConflict(
                    f"TradingRun {self.namespace}/{self.name} changed since this step read it (409)"
                ) from None
            if error.status == 404:
                raise RunGone(f"TradingRun {self.namespace}/{self.name} no longer exists") from None
            raise
        self._object = cast(dict[str, Any], written)
        self._written = payload

"""Writes a run's status through the `/status` subresource.

A replace (PUT) rather than a merge patch: the checkpoint holds explicit nulls (e.g. no pending order)
that a merge patch would read as "delete", and keys that disappear must disappear. The resourceVersion
guards against overwriting a newer object; on a conflict (someone annotated the run) re-read and retry.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from traiding.resource import API_GROUP, API_VERSION, PLURAL, TradingRunStatus

MAX_CONFLICTS = 5


class StatusWriter:
    def __init__(self, api: ApiClient, namespace: str, name: str) -> None:
        self.api = CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name
        self._object: dict[str, Any] | None = None
        self._written: dict[str, Any] | None = None

    async def write(self, status: TradingRunStatus) -> None:
        payload = status.model_dump(mode="json", exclude_none=True)
        if payload == self._written:
            return  # e.g. a run waiting for its approval: nothing new to say, no API call
        await asyncio.to_thread(self._write, payload)
        self._written = payload

    def _write(self, payload: dict[str, Any]) -> None:
        for _ in range(MAX_CONFLICTS):
            if self._object is None:
                self._object = cast(
                    dict[str, Any],
                    self.api.get_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace, PLURAL, self.name),
                )
            body = {**self._object, "status": payload}
            try:
                self._object = cast(
                    dict[str, Any],
                    self.api.replace_namespaced_custom_object_status(
                        API_GROUP, API_VERSION, self.namespace, PLURAL, self.name, body
                    ),
                )
                return
            except ApiException as error:
                if error.status != 409:
                    raise
                self._object = None
        raise RuntimeError(f"status of {self.namespace}/{self.name}: {MAX_CONFLICTS} conflicts in a row")

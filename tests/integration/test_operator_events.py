"""The operator's Events against the real API server: repeats aggregated as Kubernetes' own recorder does."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from kubernetes import client

from traiding_operator.kube import KubeCalls
from traiding_operator.kube_events import COMBINED, SIMILAR_LIMIT, EventRecorder, ObjectRef

pytestmark = [pytest.mark.k8s]


def events_of(k8s_api: Any, namespace: str, name: str) -> list[client.CoreV1Event]:
    listing = client.CoreV1Api(k8s_api).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return sorted(listing.items, key=lambda e: e.message or "")


def test_repeats_are_one_event_with_a_count_and_many_similar_ones_are_combined(
    k8s_api: Any, k8s_namespace: str
) -> None:
    ref = ObjectRef("traiding.io/v1alpha1", "TradingRun", k8s_namespace, "noisy", str(uuid.uuid4()))
    kube = KubeCalls(k8s_api)

    async def main() -> None:
        recorder = EventRecorder(kube, "op-test")
        recorder.start()
        for _ in range(40):  # a session that skips an entry on every candle
            recorder.record(ref, "Warning", "EntrySkipped", "BTC/USDT: the order is below the minimum")
            await asyncio.sleep(0)
        for i in range(SIMILAR_LIMIT + 3):  # different messages of one reason
            recorder.record(ref, "Normal", "OrderFilled", f"fill {i:02d}")
            await asyncio.sleep(0)
        await recorder.close()

    try:
        asyncio.run(main())
    finally:
        kube.shutdown()  # the session's ApiClient stays open for the other tests
    events = events_of(k8s_api, k8s_namespace, "noisy")
    skipped = [e for e in events if e.reason == "EntrySkipped"]
    assert [(e.type, e.count, e.message) for e in skipped] == [
        ("Warning", 40, "BTC/USDT: the order is below the minimum")
    ]
    (event,) = skipped
    assert event.first_timestamp is not None and event.last_timestamp is not None
    assert event.last_timestamp >= event.first_timestamp
    assert event.source is not None and (event.source.component, event.reporting_instance) == (
        "traiding-operator",
        "op-test",
    )
    assert (event.involved_object.uid, event.involved_object.kind) == (ref.uid, "TradingRun")
    fills = [e for e in events if e.reason == "OrderFilled"]
    single = [e for e in fills if not (e.message or "").startswith(COMBINED)]
    combined = [e for e in fills if (e.message or "").startswith(COMBINED)]
    assert [e.message for e in single] == [f"fill {i:02d}" for i in range(SIMILAR_LIMIT)]
    assert [(e.count, e.message) for e in combined] == [(3, f"{COMBINED}fill {SIMILAR_LIMIT + 2:02d}")]

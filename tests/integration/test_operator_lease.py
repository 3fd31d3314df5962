"""One driver per run, against the real API server: the run's Lease and status writes guarded by resourceVersion."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from tests.integration.example_runs import example_run
from tests.integration.test_crd_apiserver import crd_installed  # noqa: F401 - the fixture installs the CRD
from tests.integration.test_operator import annotate, create_run, get_run
from traiding.resource import TradingRunStatus
from traiding_operator.kube import KubeCalls
from traiding_operator.lease import LeaseLost, LeaseSettings, RunLease, lease_name
from traiding_operator.status_writer import StatusConflict, StatusWriter

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("crd_installed")]

SHORT = LeaseSettings.for_duration(3)  # renew every 1 s, stop acting after 2 s without a renewal


@pytest.fixture
async def kube(k8s_api: Any) -> AsyncIterator[KubeCalls]:
    calls = KubeCalls(k8s_api)
    yield calls
    calls.shutdown()  # the session's ApiClient stays open for the other tests


@pytest.fixture
def run(k8s_api: Any, k8s_namespace: str) -> dict[str, Any]:
    body = example_run()
    body["metadata"] = {"name": "leased"}
    create_run(k8s_api, k8s_namespace, body)
    return get_run(k8s_api, k8s_namespace, "leased")


def lease_of(kube: KubeCalls, namespace: str, run: dict[str, Any], identity: str) -> RunLease:
    return RunLease(
        kube,
        namespace=namespace,
        run_name=run["metadata"]["name"],
        run_uid=run["metadata"]["uid"],
        identity=identity,
        settings=SHORT,
    )


def stored_lease(k8s_api: Any, namespace: str) -> client.V1Lease:
    return client.CoordinationV1Api(k8s_api).read_namespaced_lease(lease_name("leased"), namespace)


async def test_a_second_process_waits_while_the_holder_renews_and_takes_over_when_it_stops(
    kube: KubeCalls, k8s_api: Any, k8s_namespace: str, run: dict[str, Any]
) -> None:
    first, second = lease_of(kube, k8s_namespace, run, "op-a"), lease_of(kube, k8s_namespace, run, "op-b")
    assert await first.try_acquire()
    stored = stored_lease(k8s_api, k8s_namespace)
    assert stored.spec is not None and stored.spec.holder_identity == "op-a"
    assert stored.spec.lease_duration_seconds == 3
    assert stored.metadata is not None and stored.metadata.owner_references is not None
    assert [(o.kind, o.uid) for o in stored.metadata.owner_references] == [("TradingRun", run["metadata"]["uid"])]
    async with first.kept():
        for _ in range(5):  # over 5 s, more than the lease's duration: the holder keeps it
            assert not await second.try_acquire()
            await asyncio.sleep(1)
        assert first.held and second.holder == "op-a"
    # op-a stops renewing (it died): op-b takes over once the record has not changed for 3 s on its own clock,
    # counted from when it first saw the last renewal (which it cannot have seen before it was written).
    renewed = stored_lease(k8s_api, k8s_namespace).spec
    assert renewed is not None and renewed.renew_time is not None
    last_renewal = renewed.renew_time
    for _ in range(50):
        if await second.try_acquire():
            break
        await asyncio.sleep(0.2)
    waited = (datetime.now(UTC) - last_renewal).total_seconds()
    assert 2.9 <= waited <= 6, waited
    assert not first.held, "a holder that could not renew for 2 s stops acting before anyone may take over"
    with pytest.raises(LeaseLost):
        first.check()
    stored = stored_lease(k8s_api, k8s_namespace)
    assert stored.spec is not None and (stored.spec.holder_identity, stored.spec.lease_transitions) == ("op-b", 1)
    assert not await first.renew()  # it learns it is someone else's now


async def test_a_restarted_process_with_the_same_identity_takes_its_lease_back_at_once(
    kube: KubeCalls, k8s_namespace: str, run: dict[str, Any]
) -> None:
    assert await lease_of(kube, k8s_namespace, run, "pod-1").try_acquire()
    restarted = lease_of(kube, k8s_namespace, run, "pod-1")
    assert await restarted.try_acquire()
    assert not await lease_of(kube, k8s_namespace, run, "pod-2").try_acquire()


async def test_a_released_or_long_stale_lease_is_taken_at_once(
    kube: KubeCalls, k8s_api: Any, k8s_namespace: str, run: dict[str, Any]
) -> None:
    holder = lease_of(kube, k8s_namespace, run, "op-a")
    assert await holder.try_acquire()
    await holder.release()
    assert await lease_of(kube, k8s_namespace, run, "op-b").try_acquire()
    # A record renewed long ago (its operator was down for a while) needs no waiting either.
    leases = client.CoordinationV1Api(k8s_api)
    stored = stored_lease(k8s_api, k8s_namespace)
    assert stored.spec is not None
    stored.spec.renew_time = datetime.now(UTC) - timedelta(minutes=5)
    leases.replace_namespaced_lease(lease_name("leased"), k8s_namespace, stored)
    assert await lease_of(kube, k8s_namespace, run, "op-c").try_acquire()


async def test_a_status_write_on_a_stale_view_is_refused_and_overwrites_nothing(
    kube: KubeCalls, k8s_api: Any, k8s_namespace: str, run: dict[str, Any]
) -> None:
    writer, other = StatusWriter(kube, k8s_namespace, "leased"), StatusWriter(kube, k8s_namespace, "leased")
    await writer.read()
    await other.read()
    await other.write(TradingRunStatus(phase="DataCheck", message="written by the other driver"))
    with pytest.raises(StatusConflict):
        await writer.write(TradingRunStatus(phase="Backtest", message="a stale view"))
    assert get_run(k8s_api, k8s_namespace, "leased")["status"]["message"] == "written by the other driver"
    await writer.read()
    await writer.write(TradingRunStatus(phase="Backtest", message="after reading again"))
    await writer.write(TradingRunStatus(phase="Backtest", message="its own writes chain"))
    annotate(k8s_api, k8s_namespace, "leased", {"traiding.io/cancel": "true"})  # any change makes the view stale
    with pytest.raises(StatusConflict):
        await writer.write(TradingRunStatus(phase="Backtest", message="after an annotation"))
    assert get_run(k8s_api, k8s_namespace, "leased")["status"]["message"] == "its own writes chain"

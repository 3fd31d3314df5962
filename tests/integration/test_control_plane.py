"""What the operator relies on, shown against a real Kubernetes API server.

Each test talks to the cluster of the ``kube_cluster`` fixture (see
tests/cluster_plugin.py and docs/cluster.md): schema pruning, validation
(OpenAPI and CEL), the status subresource, optimistic concurrency, RBAC,
garbage collection, namespace deletion and the Job/CronJob controllers.
"""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster_plugin import KubeCluster, wait_for

pytestmark = pytest.mark.k8s

GROUP = "cptest.traiding.io"
VERSION = "v1"
PLURAL = "widgets"
CRD_NAME = f"{PLURAL}.{GROUP}"
CEL_MESSAGE = "minPrice must not exceed maxPrice"


def error_body(err: ApiException) -> dict[str, Any]:
    """The Status object the API server sent with an error."""
    assert err.body, f"HTTP {err.status} without a body"
    body: dict[str, Any] = json.loads(err.body)
    return body


def as_dict(value: object) -> dict[str, Any]:
    """A custom object as returned by CustomObjectsApi (a JSON dict)."""
    assert isinstance(value, dict), value
    return value


def meta(obj: Any) -> client.V1ObjectMeta:
    """``obj.metadata`` of a typed model, which the API server always sets."""
    metadata = obj.metadata
    assert isinstance(metadata, client.V1ObjectMeta)
    return metadata


def widget_schema() -> dict[str, Any]:
    """The structural schema of the test CRD."""
    return {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["replicas"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                    "mode": {"type": "string", "enum": ["paper", "live"]},
                    "minPrice": {"type": "integer"},
                    "maxPrice": {"type": "integer"},
                },
                "x-kubernetes-validations": [
                    {
                        "rule": "!has(self.minPrice) || !has(self.maxPrice) || self.minPrice <= self.maxPrice",
                        "message": CEL_MESSAGE,
                    }
                ],
            },
            "status": {
                "type": "object",
                "properties": {"phase": {"type": "string"}, "observedGeneration": {"type": "integer"}},
            },
        },
    }


@pytest.fixture(scope="module")
def widget_crd(k8s_api: client.ApiClient) -> Iterator[str]:
    """Install the cluster-scoped test CRD ``widgets.cptest.traiding.io`` and wait until Established."""
    ext = client.ApiextensionsV1Api(k8s_api)
    body: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": widget_schema()},
                }
            ],
        },
    }
    # The generated client sends a plain dict as it is; its annotations only name the model class.
    try:
        ext.create_custom_resource_definition(body)  # type: ignore[arg-type]
    except ApiException as err:
        if err.status != 409:  # left over from an interrupted run: bring it up to date
            raise
        body["metadata"] = {
            "name": CRD_NAME,
            "resourceVersion": meta(ext.read_custom_resource_definition(CRD_NAME)).resource_version,
        }
        ext.replace_custom_resource_definition(CRD_NAME, body)  # type: ignore[arg-type]

    def established() -> bool:
        status = ext.read_custom_resource_definition(CRD_NAME).status
        conditions = status.conditions if status else None
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    wait_for("the test CRD to be Established", established, timeout=30, interval=0.2)
    # Discovery can lag a moment behind Established; wait until a list works.
    custom = client.CustomObjectsApi(k8s_api)

    def served() -> bool:
        try:
            custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    wait_for("the test CRD to be served", served, timeout=30, interval=0.2)
    yield CRD_NAME
    ext.delete_custom_resource_definition(CRD_NAME)


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_version_is_pinned(kube_cluster: KubeCluster, k8s_api: client.ApiClient) -> None:
    info = client.VersionApi(k8s_api).get_code()
    expected = kube_cluster.expected_version
    if expected is None:
        pytest.skip(f"external cluster ({info.git_version}); only the local control plane is pinned")
    assert info.git_version == expected
    assert (info.major, info.minor) == tuple(expected.lstrip("v").split(".")[:2])


def test_built_kubectl_matches_the_server(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.local:
        pytest.skip("external cluster: its kubectl is not ours")
    kubectl = kube_cluster.tool("kubectl")
    assert not kubectl.startswith("/usr/bin/")
    out = subprocess.run(
        [kubectl, "version", "-o", "json"], env=kube_cluster.env(), capture_output=True, text=True, check=True
    )
    versions = json.loads(out.stdout)
    assert versions["clientVersion"]["gitVersion"] == kube_cluster.expected_version
    assert versions["serverVersion"]["gitVersion"] == kube_cluster.expected_version


def test_unknown_fields_are_pruned(k8s_api: client.ApiClient, k8s_namespace: str, widget_crd: str) -> None:
    custom = client.CustomObjectsApi(k8s_api)
    body = widget("pruned", replicas=1, mode="paper", bogus="dropped")
    body["topLevelBogus"] = {"x": 1}
    custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, body)

    stored = as_dict(custom.get_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, "pruned"))
    assert stored["spec"] == {"replicas": 1, "mode": "paper"}
    assert "topLevelBogus" not in stored


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"replicas": 99}, "spec.replicas"),
        ({"replicas": 1, "mode": "yolo"}, "spec.mode"),
        ({"replicas": "three"}, "spec.replicas"),
        ({"mode": "paper"}, "spec.replicas"),
    ],
    ids=["maximum", "enum", "type", "required"],
)
def test_schema_violation_is_rejected_naming_the_field(
    k8s_api: client.ApiClient, k8s_namespace: str, widget_crd: str, spec: dict[str, Any], field: str
) -> None:
    custom = client.CustomObjectsApi(k8s_api)
    with pytest.raises(ApiException) as excinfo:
        custom.create_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, widget("bad", **spec))
    assert excinfo.value.status == 422
    body = error_body(excinfo.value)
    assert body["reason"] == "Invalid"
    assert field in body["message"]
    assert field in {cause["field"] for cause in body["details"]["causes"]}


def test_cel_validation_rule_is_enforced_with_its_message(
    k8s_api: client.ApiClient, k8s_namespace: str, widget_crd: str
) -> None:
    custom = client.CustomObjectsApi(k8s_api)
    with pytest.raises(ApiException) as excinfo:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, k8s_namespace, PLURAL, widget("cel", replicas=1, minPrice=5, maxPrice=1)
        )
    assert excinfo.value.status == 422
    assert CEL_MESSAGE in error_body(excinfo.value)["message"]
    # The same rule lets a consistent object through.
    custom.create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, PLURAL, widget("cel", replicas=1, minPrice=1, maxPrice=5)
    )


def test_status_subresource_separates_spec_and_status(
    k8s_api: client.ApiClient, k8s_namespace: str, widget_crd: str
) -> None:
    custom = client.CustomObjectsApi(k8s_api)
    created = as_dict(
        custom.create_namespaced_custom_object(
            GROUP, VERSION, k8s_namespace, PLURAL, widget("sub", replicas=1, mode="paper")
        )
    )
    generation = created["metadata"]["generation"]

    # A write to /status changes status only: the spec part is ignored.
    after_status = as_dict(
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, k8s_namespace, PLURAL, "sub", {"spec": {"replicas": 7}, "status": {"phase": "Running"}}
        )
    )
    assert after_status["spec"]["replicas"] == 1
    assert after_status["status"] == {"phase": "Running"}
    assert after_status["metadata"]["generation"] == generation

    # A write to the main resource changes spec only: the status part is ignored.
    after_main = as_dict(
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, k8s_namespace, PLURAL, "sub", {"spec": {"replicas": 2}, "status": {"phase": "Hacked"}}
        )
    )
    assert after_main["spec"]["replicas"] == 2
    assert after_main["status"] == {"phase": "Running"}
    assert after_main["metadata"]["generation"] == generation + 1


def test_stale_resource_version_gets_409(k8s_api: client.ApiClient, k8s_namespace: str) -> None:
    core = client.CoreV1Api(k8s_api)
    cm = core.create_namespaced_config_map(
        k8s_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cas"), data={"n": "0"})
    )
    stale = meta(cm).resource_version
    cm.data = {"n": "1"}
    fresh = core.replace_namespaced_config_map("cas", k8s_namespace, cm)
    assert meta(fresh).resource_version != stale

    fresh.data = {"n": "2"}
    meta(fresh).resource_version = stale
    with pytest.raises(ApiException) as excinfo:
        core.replace_namespaced_config_map("cas", k8s_namespace, fresh)
    assert excinfo.value.status == 409
    assert error_body(excinfo.value)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cas", k8s_namespace).data == {"n": "1"}


@pytest.fixture
def impersonated(k8s_api: client.ApiClient) -> Iterator[tuple[client.ApiClient, str]]:
    """An ApiClient acting as a fresh user that has no RBAC bindings."""
    user = f"cptest-nobody-{uuid.uuid4().hex[:6]}"
    api = client.ApiClient(k8s_api.configuration, header_name="Impersonate-User", header_value=user)
    try:
        yield api, user
    finally:
        api.close()  # type: ignore[no-untyped-call]


def test_identity_without_rights_gets_403_until_bound(
    k8s_api: client.ApiClient, k8s_namespace: str, impersonated: tuple[client.ApiClient, str]
) -> None:
    api, user = impersonated
    as_user = client.CoreV1Api(api)
    with pytest.raises(ApiException) as excinfo:
        as_user.list_namespaced_config_map(k8s_namespace)
    assert excinfo.value.status == 403
    assert user in error_body(excinfo.value)["message"]

    rbac = client.RbacAuthorizationV1Api(k8s_api)
    rbac.create_namespaced_role(
        k8s_namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="cm-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        k8s_namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="cm-reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"),
            subjects=[client.RbacV1Subject(api_group="rbac.authorization.k8s.io", kind="User", name=user)],
        ),
    )

    def allowed() -> bool:
        try:
            as_user.list_namespaced_config_map(k8s_namespace)
        except ApiException as err:
            if err.status == 403:
                return False
            raise
        return True

    wait_for("the RoleBinding to take effect", allowed, timeout=10, interval=0.2)
    # Listing is granted; writing still is not.
    with pytest.raises(ApiException) as excinfo:
        as_user.create_namespaced_config_map(
            k8s_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope"))
        )
    assert excinfo.value.status == 403


def test_service_account_token_authenticates_and_rbac_limits_it(k8s_api: client.ApiClient, k8s_namespace: str) -> None:
    """A token the API server signed for a ServiceAccount (as the operator's Pod gets) is accepted and
    identifies that ServiceAccount, whose rights are only what RBAC grants it."""
    core = client.CoreV1Api(k8s_api)
    core.create_namespaced_service_account(
        k8s_namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot"))
    )
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    status = core.create_namespaced_service_account_token("robot", k8s_namespace, request).status
    assert status is not None and status.token

    config = copy.copy(k8s_api.configuration)
    config.cert_file = None
    config.key_file = None
    config.api_key = {"authorization": status.token}
    config.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(config) as as_robot:
        review = client.AuthenticationV1Api(as_robot).create_self_subject_review(client.V1SelfSubjectReview())
        assert review.status is not None and review.status.user_info is not None
        assert review.status.user_info.username == f"system:serviceaccount:{k8s_namespace}:robot"

        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(as_robot).list_namespaced_config_map(k8s_namespace)
        assert excinfo.value.status == 403

    config.api_key = {"authorization": status.token[:-4] + "AAAA"}  # a forged signature
    with client.ApiClient(config) as forged, pytest.raises(ApiException) as excinfo:
        client.CoreV1Api(forged).list_namespaced_config_map(k8s_namespace)
    assert excinfo.value.status == 401


def test_deleting_owner_garbage_collects_children(k8s_api: client.ApiClient, k8s_namespace: str) -> None:
    core = client.CoreV1Api(k8s_api)
    owner = core.create_namespaced_config_map(
        k8s_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=meta(owner).uid)
    core.create_namespaced_config_map(
        k8s_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="child", owner_references=[ref]))
    )
    core.create_namespaced_config_map(k8s_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="orphan")))

    core.delete_namespaced_config_map("owner", k8s_namespace, propagation_policy="Background")

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", k8s_namespace)
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        return False

    wait_for("the garbage collector to delete the child", child_gone, timeout=60)
    assert meta(core.read_namespaced_config_map("orphan", k8s_namespace)).name == "orphan"


def test_namespace_deletion_finishes(k8s_api: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_api)
    name = f"t-nsdel-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content")))
    core.delete_namespace(name)

    def gone() -> bool:
        try:
            ns = core.read_namespace(name)
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        assert ns.status is not None
        assert ns.status.phase == "Terminating"
        return False

    wait_for(f"namespace {name} to be deleted by the namespace controller", gone, timeout=90)


def job_template(command: list[str]) -> client.V1JobSpec:
    return client.V1JobSpec(
        backoff_limit=0,
        template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(
                restart_policy="Never",
                containers=[client.V1Container(name="main", image="busybox:1.36", command=command)],
            )
        ),
    )


def test_job_pod_is_scheduled_and_job_completes(k8s_api: client.ApiClient, k8s_namespace: str) -> None:
    batch = client.BatchV1Api(k8s_api)
    core = client.CoreV1Api(k8s_api)
    batch.create_namespaced_job(
        k8s_namespace,
        client.V1Job(metadata=client.V1ObjectMeta(name="once"), spec=job_template(["true"])),
    )

    def complete() -> bool:
        status = batch.read_namespaced_job("once", k8s_namespace).status
        conditions = status.conditions if status else None
        return any(c.type == "Complete" and c.status == "True" for c in conditions or [])

    wait_for("Job once to complete", complete, timeout=90)
    pods = core.list_namespaced_pod(k8s_namespace, label_selector="job-name=once").items
    assert pods, "the Job controller created no Pod"
    assert all(p.spec and p.spec.node_name for p in pods), "the scheduler bound no node"


def test_cronjob_creates_jobs(k8s_api: client.ApiClient, k8s_namespace: str) -> None:
    batch = client.BatchV1Api(k8s_api)
    cronjob = batch.create_namespaced_cron_job(
        k8s_namespace,
        client.V1CronJob(
            metadata=client.V1ObjectMeta(name="tick"),
            spec=client.V1CronJobSpec(
                schedule="* * * * *",
                concurrency_policy="Forbid",
                job_template=client.V1JobTemplateSpec(spec=job_template(["true"])),
            ),
        ),
    )

    def owned_jobs() -> list[client.V1Job]:
        jobs = batch.list_namespaced_job(k8s_namespace).items
        owner_uid = meta(cronjob).uid
        return [job for job in jobs if any(ref.uid == owner_uid for ref in meta(job).owner_references or [])]

    jobs = wait_for("the CronJob controller to create a Job", owned_jobs, timeout=100, interval=1)
    assert (meta(jobs[0]).name or "").startswith("tick-")

    def last_successful() -> bool:
        status = batch.read_namespaced_cron_job("tick", k8s_namespace).status
        return bool(status and status.last_successful_time)

    wait_for("the CronJob to record a successful run", last_successful, timeout=90, interval=1)

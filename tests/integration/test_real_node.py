"""Pods that really run: the real-node cluster of `scripts/cluster up --real-node` (docs/cluster.md).

A Pod from the locally built base image runs to completion in containerd; a Pod reaches the API server
through the `kubernetes` Service with its ServiceAccount token and is refused what its Role does not
allow; a Pod finds another Service by its DNS name (CoreDNS) and reaches it (kube-proxy); a CronJob's
Job Pod runs. Nothing here is faked: no kwok node exists in this cluster.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from kubernetes import client

from tests.cluster_plugin import REPO, KubeCluster, real_node_state_dir, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]

BASE_IMAGE = "ai-traiding-base:bookworm"
NODE_NAME = "aitr-node"


@pytest.fixture(scope="module")
def base_image(real_node_cluster: KubeCluster) -> str:
    """The base image, built here (`scripts/image base`) and loaded into the node (`scripts/cluster load`)."""
    built = subprocess.run([str(REPO / "scripts" / "image"), "base"], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    env = {**real_node_cluster.env(), "AI_TRAIDING_CLUSTER_DIR": str(real_node_state_dir())}
    loaded = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "cluster"), "load", BASE_IMAGE],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert loaded.returncode == 0, loaded.stderr
    return BASE_IMAGE


def python_pod(name: str, image: str, code: str, **spec: object) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name=name,
                    image=image,
                    image_pull_policy="Never",  # no registry: the image is on the node or nowhere
                    command=["python3", "-c", textwrap.dedent(code)],
                )
            ],
            **spec,
        ),
    )


def finished_pod(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    def probe() -> Any:
        pod: Any = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return wait_for(f"pod {name} to finish", probe, timeout=90)


def test_a_pod_from_the_base_image_runs_in_containerd(
    real_node_api: client.ApiClient, real_node_namespace: str, base_image: str
) -> None:
    core = client.CoreV1Api(real_node_api)
    core.create_namespaced_pod(real_node_namespace, python_pod("answer", base_image, "print(6*7)"))
    pod = finished_pod(core, real_node_namespace, "answer")
    assert pod.status.phase == "Succeeded"
    assert pod.spec.node_name == NODE_NAME
    container_id = pod.status.container_statuses[0].container_id
    assert container_id.startswith("containerd://") and len(container_id) > len("containerd://") + 60
    assert pod.status.pod_ip.startswith("10.244.0.")
    assert core.read_namespaced_pod_log("answer", real_node_namespace).strip() == "42"
    # The only node is the real one: nothing in this cluster is faked.
    nodes: list[Any] = core.list_node().items
    assert [n.metadata.name for n in nodes] == [NODE_NAME]


API_CLIENT = """
import json, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(f"{sa}/token").read()
namespace = open(f"{sa}/namespace").read()
context = ssl.create_default_context(cafile=f"{sa}/ca.crt")
for path in (f"/api/v1/namespaces/{namespace}/configmaps", f"/api/v1/namespaces/{namespace}/secrets"):
    headers = {"Authorization": "Bearer " + token}
    request = urllib.request.Request("https://kubernetes.default.svc" + path, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            print(path.rsplit("/", 1)[1], answer.status, len(json.load(answer)["items"]))
    except urllib.error.HTTPError as error:
        print(path.rsplit("/", 1)[1], error.code, json.load(error)["reason"])
"""


def test_a_pod_reaches_the_api_server_with_its_token_and_rbac_limits_it(
    real_node_api: client.ApiClient, real_node_namespace: str, base_image: str
) -> None:
    ns = real_node_namespace
    core, rbac = client.CoreV1Api(real_node_api), client.RbacAuthorizationV1Api(real_node_api)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader")))
    rbac.create_namespaced_role(
        ns,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="configmap-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=ns)],
        ),
    )
    core.create_namespaced_pod(ns, python_pod("api-client", base_image, API_CLIENT, service_account_name="reader"))
    assert finished_pod(core, ns, "api-client").status.phase == "Succeeded"
    lines = core.read_namespaced_pod_log("api-client", ns).split("\n")
    # kube-root-ca.crt is in every namespace: the allowed list call sees it; secrets are refused.
    assert lines[0].startswith("configmaps 200 ") and int(lines[0].split()[2]) >= 1
    assert lines[1] == "secrets 403 Forbidden"


def test_a_pod_finds_another_service_by_its_dns_name(
    real_node_api: client.ApiClient, real_node_namespace: str, base_image: str
) -> None:
    ns = real_node_namespace
    core = client.CoreV1Api(real_node_api)
    server = python_pod(
        "web",
        base_image,
        """
        import http.server
        class Hello(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200); self.end_headers(); self.wfile.write(b"hello from web")
        http.server.HTTPServer(("", 8080), Hello).serve_forever()
        """,
    )
    assert server.spec is not None
    server.spec.restart_policy = "Always"
    core.create_namespaced_pod(ns, server)
    core.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]),
        ),
    )

    def pod_ip() -> Any:
        pod: Any = core.read_namespaced_pod("web", ns)
        return pod.status.pod_ip

    wait_for("web to have an address", pod_ip)
    service: Any = core.read_namespaced_service("web", ns)
    service_ip = service.spec.cluster_ip
    client_code = f"""
        import socket, time, urllib.request
        name = "web.{ns}.svc.cluster.local"
        print(socket.gethostbyname(name))
        for attempt in range(30):  # the server Pod may still be starting
            try:
                print(urllib.request.urlopen(f"http://{{name}}/", timeout=5).read().decode())
                break
            except OSError:
                time.sleep(1)
        """
    core.create_namespaced_pod(ns, python_pod("dns-client", base_image, client_code))
    assert finished_pod(core, ns, "dns-client").status.phase == "Succeeded"
    resolved, answer = core.read_namespaced_pod_log("dns-client", ns).strip().split("\n")
    assert resolved == service_ip
    assert answer == "hello from web"


def test_a_cronjobs_job_pod_runs(real_node_api: client.ApiClient, real_node_namespace: str, base_image: str) -> None:
    ns = real_node_namespace
    batch, core = client.BatchV1Api(real_node_api), client.CoreV1Api(real_node_api)
    template = python_pod("tick", base_image, "print('tick from a CronJob')")
    batch.create_namespaced_cron_job(
        ns,
        client.V1CronJob(
            metadata=client.V1ObjectMeta(name="tick"),
            spec=client.V1CronJobSpec(
                schedule="* * * * *",
                concurrency_policy="Forbid",
                job_template=client.V1JobTemplateSpec(
                    spec=client.V1JobSpec(
                        backoff_limit=0,
                        template=client.V1PodTemplateSpec(metadata=template.metadata, spec=template.spec),
                    )
                ),
            ),
        ),
    )

    def succeeded_job() -> Any:
        jobs: list[Any] = batch.list_namespaced_job(ns).items
        return next((j for j in jobs if (j.status.succeeded or 0) >= 1), None)

    job = wait_for("the CronJob's first Job to succeed (next full minute)", succeeded_job, timeout=150)
    assert job.metadata.owner_references[0].kind == "CronJob"
    pods: list[Any] = core.list_namespaced_pod(ns, label_selector=f"job-name={job.metadata.name}").items
    assert pods and pods[0].status.container_statuses[0].container_id.startswith("containerd://")
    assert core.read_namespaced_pod_log(pods[0].metadata.name, ns).strip() == "tick from a CronJob"

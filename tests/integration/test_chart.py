"""The Helm chart (helm/ai-traiding): lint, renders, strict validation, the real API server's verdict, its
values schema, and that it ships what the project generates (the CRD, the SLO rules)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster_plugin import REPO, KubeCluster, tools_bin_dir
from traiding_operator.annotations import APPROVED_BY, CREATED_BY
from traiding_operator.kill_switch import KILL_SWITCH_NAME
from traiding_operator.submit_cli import checked

sys.path.insert(0, str(REPO / "scripts"))
import monitoring_crds

CHART = REPO / "helm" / "ai-traiding"
KUBE_VERSION = "1.37.2"
MONITORING = "monitoring.coreos.com/v1"
VALUES_FILES = ("values.yaml", "values-dev.yaml", "values-prod.yaml")


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = tools_bin_dir() / "helm"
    proc = subprocess.run([str(binary), *args], capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def render(*args: str, monitoring: bool = False, namespace: str = "trading") -> list[dict[str, Any]]:
    api_versions = ["--api-versions", MONITORING] if monitoring else []
    out = helm("template", "ai-traiding", str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
               *api_versions, *args).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


def served_roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's Roles in the namespaces it serves (not the nightly Job's, not the one in its own namespace)."""
    return [r for r in by_kind(objects, "Role") if not r["metadata"]["name"].endswith(("-nightly", "-own"))]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_chart_version_and_app_version_follow_the_version_file() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = (REPO / "VERSION").read_text().strip()
    assert (chart["version"], chart["appVersion"]) == (version, version)


def test_chart_ships_the_generated_crd_byte_for_byte() -> None:
    assert (CHART / "crds" / "tradingrun.yaml").read_bytes() == (REPO / "crds" / "tradingrun.yaml").read_bytes()


@pytest.mark.parametrize("values", VALUES_FILES)
def test_helm_lint_passes(values: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(CHART / values), "--kube-version", KUBE_VERSION)
    assert "0 chart(s) failed" in result.stdout


def test_without_the_monitoring_api_no_monitoring_object_is_rendered() -> None:
    objects = render("-f", str(CHART / "values-dev.yaml"))
    assert not by_kind(objects, "ServiceMonitor") and not by_kind(objects, "PrometheusRule")
    assert not [c for c in by_kind(objects, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]


def test_with_the_monitoring_api_the_monitors_rules_and_dashboard_are_rendered_with_extra_labels() -> None:
    objects = render("--set", "monitoring.additionalLabels.release=prometheus", monitoring=True)
    (monitor,) = by_kind(objects, "ServiceMonitor")
    (rule,) = by_kind(objects, "PrometheusRule")
    dashboards = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(dashboards) == 1
    for obj in (monitor, rule, dashboards[0]):
        assert obj["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert rule["spec"]["groups"], "the PrometheusRule has no rule groups"
    json.loads(dashboards[0]["data"]["ai-traiding.json"])  # a dashboard Grafana can read
    disabled = render("--set", "monitoring.enabled=false", monitoring=True)
    assert not by_kind(disabled, "ServiceMonitor") and not by_kind(disabled, "PrometheusRule")


def test_prometheus_rule_is_exactly_what_traiding_slo_render_prints() -> None:
    rendered = subprocess.run(
        [str(REPO / ".venv" / "bin" / "traiding"), "slo", "render"], capture_output=True, text=True, check=True
    ).stdout
    (rule,) = by_kind(render(monitoring=True), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(rendered)["spec"]


def test_scopes_render_the_matching_rbac_and_arguments() -> None:
    single = render()
    assert [r["metadata"]["namespace"] for r in served_roles(single)] == ["trading"]
    (operator,) = [d for d in by_kind(single, "Deployment") if d["metadata"]["name"] == "ai-traiding"]
    assert "--namespace=trading" in operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not by_kind(single, "ClusterRole")

    several = render("--set", "watch.scope=namespaces", "--set", "watch.namespaces={a,b}")
    roles = served_roles(several)
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["a", "b"]
    (operator,) = [d for d in by_kind(several, "Deployment") if d["metadata"]["name"] == "ai-traiding"]
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=a" in args and "--namespace=b" in args

    cluster = render("--set", "watch.scope=cluster")
    assert len(by_kind(cluster, "ClusterRole")) == 1 and len(by_kind(cluster, "ClusterRoleBinding")) == 1
    (operator,) = [d for d in by_kind(cluster, "Deployment") if d["metadata"]["name"] == "ai-traiding"]
    assert "--all-namespaces" in operator["spec"]["template"]["spec"]["containers"][0]["args"]

    empty = helm("template", str(CHART), "--kube-version", KUBE_VERSION, "--set", "watch.scope=namespaces", check=False)
    assert empty.returncode != 0 and "watch.namespaces must list at least one namespace" in empty.stderr


def test_operator_rights_are_the_least_it_needs() -> None:
    (role,) = served_roles(render())
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert ("", "secrets", "get") in granted
    assert not {("", "secrets", "list"), ("", "secrets", "watch")} & granted
    assert not [v for (_, _, v) in granted if v in ("*", "delete", "deletecollection", "escalate", "bind")]
    [config_maps] = [rule for rule in role["rules"] if "configmaps" in rule["resources"]]
    assert config_maps == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [KILL_SWITCH_NAME],  # the kill switch and no other ConfigMap
        "verbs": ["get"],
    }
    (nightly,) = [r for r in by_kind(render(), "Role") if "nightly" in r["metadata"]["name"]]
    assert nightly["rules"] == [{"apiGroups": ["traiding.io"], "resources": ["tradingruns"], "verbs": ["create"]}]


def test_every_container_runs_non_root_read_only_without_capabilities() -> None:
    objects = render("-f", str(CHART / "values-dev.yaml"))
    pod_specs = [d["spec"]["template"]["spec"] for d in by_kind(objects, "Deployment")]
    pod_specs += [c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in by_kind(objects, "CronJob")]
    assert len(pod_specs) == 3
    for spec in pod_specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert container["resources"]["limits"]["memory"]


def test_the_operator_deployment_is_one_replica_recreated_with_probes() -> None:
    (operator,) = [d for d in by_kind(render(), "Deployment") if d["metadata"]["name"] == "ai-traiding"]
    assert operator["spec"]["replicas"] == 1 and operator["spec"]["strategy"] == {"type": "Recreate"}
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]


SHARDS = ("--set", "shards[0].name=a", "--set", "shards[0].default=true", "--set", "shards[1].name=b")


def test_shards_render_one_operator_deployment_each_serving_its_own_label() -> None:
    objects = render(*SHARDS)
    operators = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    assert sorted(operators) == ["ai-traiding-shard-a", "ai-traiding-shard-b"]
    for shard, extra in (("a", ["--default-shard"]), ("b", [])):
        operator = operators[f"ai-traiding-shard-{shard}"]
        args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
        assert [a for a in args if "shard" in a] == [f"--shard={shard}", *extra]
        # Each Deployment selects its own Pods only (selectors of two Deployments must not overlap).
        assert operator["spec"]["selector"]["matchLabels"]["traiding.io/shard"] == shard
        assert operator["spec"]["template"]["metadata"]["labels"]["traiding.io/shard"] == shard
        assert operator["spec"]["replicas"] == 1 and operator["spec"]["strategy"] == {"type": "Recreate"}
    # One metrics Service over all shards' Pods: each operator counts only its shard's runs, so sums add up.
    (service,) = [s for s in by_kind(objects, "Service") if s["metadata"]["name"].endswith("-metrics")]
    assert "traiding.io/shard" not in service["spec"]["selector"]
    for operator in operators.values():
        assert service["spec"]["selector"].items() <= operator["spec"]["template"]["metadata"]["labels"].items()
    (single,) = by_kind(render(), "Deployment")
    assert not [a for a in single["spec"]["template"]["spec"]["containers"][0]["args"] if "shard" in a]


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (("--set", "shards[0].name=a", "--set", "shards[1].name=b"), "exactly one shard needs default: true"),
        ((*SHARDS, "--set", "shards[1].default=true"), "exactly one shard needs default: true"),
        ((*SHARDS, "--set", "shards[1].name=a"), 'the shard name "a" is listed twice'),
        (("--set", "shards[0].name=Not_A_Label", "--set", "shards[0].default=true"), "/shards/0/name"),
        (("--set", "shards[0].name=a", "--set", "shards[0].primary=true"), "primary"),
    ],
)
def test_wrong_shards_are_refused_saying_why(settings: tuple[str, ...], said: str) -> None:
    result = helm("template", str(CHART), "--kube-version", KUBE_VERSION, *settings, check=False)
    assert result.returncode != 0 and said in result.stderr, result.stderr


def test_nightly_cronjob_submits_a_valid_dry_run_even_if_values_ask_for_live() -> None:
    objects = render("--set", "nightly.run.spec.mode=live")
    (cron,) = by_kind(objects, "CronJob")
    assert cron["spec"]["schedule"] == "0 2 * * *" and cron["spec"]["timeZone"] == "Etc/UTC"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (config,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-nightly")]
    manifest = yaml.safe_load(config["data"]["run.yaml"])
    assert manifest["spec"]["mode"] == "dry-run"
    assert manifest["metadata"]["labels"]["traiding.io/nightly"] == "true"
    checked(manifest, "nightly run template")  # raises, naming the field, if the template were invalid


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("watch.scope=everywhere", "/watch/scope"),
        ("operator.logLevl=debug", "logLevl"),
        ("simulator.speed=-1", "/simulator/speed"),
        ("nightly.schedule=tonight", "/nightly/schedule"),
        ("metrics.port=70000", "/metrics/port"),
        ("operator.simulators.Bad_Name=http://x", "'Bad_Name' does not match pattern"),
        ("operator.simulators.sim=ftp://x", "/operator/simulators/sim"),
        ("networkPolicy.exchanges.cidrs={api.binance.com}", "/networkPolicy/exchanges/cidrs/0"),
        ("admissionPolicy.approverGroup=a'b", "/admissionPolicy/approverGroup"),
        ("keyEncryption.required=true", "/keyEncryption/secretName"),  # encrypted keys need the keys Secret
    ],
)
def test_a_wrong_value_is_refused_naming_it(setting: str, named: str) -> None:
    result = helm("template", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr and named in result.stderr


def test_every_rendered_built_in_object_validates_strictly(tmp_path: Path) -> None:
    objects = render("-f", str(CHART / "values-dev.yaml"), monitoring=True)
    built_in = [o for o in objects if "." not in o["apiVersion"].split("/")[0] or o["apiVersion"].startswith(
        ("apps/", "batch/", "rbac.authorization.k8s.io/", "policy/", "networking.k8s.io/")
    )]  # fmt: skip
    assert len(built_in) >= 10
    path = tmp_path / "render.yaml"
    path.write_text(yaml.safe_dump_all(built_in))
    validate = REPO / ".venv" / "bin" / "kubernetes-validate"
    result = subprocess.run(
        [str(validate), "--strict", "--kubernetes-version", "1.37.0", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(built_in)


@pytest.fixture
def crds_installed(kube_cluster: KubeCluster) -> Iterator[None]:
    """The TradingRun CRD and the Prometheus Operator's, as a cluster with the chart installed has them."""
    crds = [REPO / "crds" / "tradingrun.yaml", *monitoring_crds.paths()]
    for crd in crds:
        kubectl(kube_cluster, "apply", "--server-side", "-f", str(crd))
    kubectl(kube_cluster, "wait", "--for=condition=Established", "--timeout=60s", "crd/tradingruns.traiding.io",
            "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")  # fmt: skip
    yield


def kubectl(cluster: KubeCluster, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [cluster.tool("kubectl"), *args], capture_output=True, text=True, check=False, env=cluster.env(), input=stdin
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.k8s
@pytest.mark.parametrize("values", VALUES_FILES)
def test_the_api_server_accepts_the_whole_render(
    kube_cluster: KubeCluster, k8s_namespace: str, crds_installed: None, values: str
) -> None:
    namespaces = ["--set", f"watch.namespaces={{{k8s_namespace}}}", "--set", f"nightly.namespace={k8s_namespace}"]
    objects = render("-f", str(CHART / values), *namespaces, monitoring=True, namespace=k8s_namespace)
    if values == "values.yaml":  # and with shards: two Deployments side by side
        objects += by_kind(render(*SHARDS, *namespaces, namespace=k8s_namespace), "Deployment")
    out = kubectl(kube_cluster, "apply", "--dry-run=server", "-n", k8s_namespace, "-f", "-",
                  stdin=yaml.safe_dump_all(objects))  # fmt: skip
    assert out.count("(server dry run)") == len(objects), out


def test_the_scraped_job_is_the_one_the_slo_rules_select() -> None:
    from traiding.telemetry.slo import SloConfig  # noqa: PLC0415

    objects = render(monitoring=True)
    (monitor,) = by_kind(objects, "ServiceMonitor")
    (service,) = [s for s in by_kind(objects, "Service") if s["metadata"]["name"].endswith("-metrics")]
    # The Prometheus Operator names the job after the Service label that jobLabel names.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == SloConfig().job
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_the_dev_simulator_replays_the_window_the_example_pins() -> None:
    example = yaml.safe_load((REPO / "examples" / "dry-run.yaml").read_text())
    dev = yaml.safe_load((CHART / "values-dev.yaml").read_text())
    assert dev["simulator"]["start"] == example["spec"]["exchange"]["simulator"]["start"]


def operator_env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "ai-traiding"]
    return {
        e["name"]: e.get("value", e.get("valueFrom"))
        for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_the_operator_settings_come_from_the_values() -> None:
    env = operator_env(
        render("-f", str(CHART / "values-dev.yaml"), "--set", "operator.simulators.eu=http://10.1.2.3:8080")
    )
    assert json.loads(env["TRAIDING_SIMULATORS"]) == {
        "default": "http://ai-traiding-simulator.trading.svc:8080",  # the chart's own simulator
        "eu": "http://10.1.2.3:8080",
    }
    assert json.loads(env["TRAIDING_EXCHANGES"]) == ["binance"]
    assert env["TRAIDING_OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["TRAIDING_OPERATOR_IDENTITY"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "TRAIDING_KEYS_SECRET" not in env and env["TRAIDING_REQUIRE_ENCRYPTED_KEYS"] == "false"
    prod = operator_env(render("-f", str(CHART / "values-prod.yaml")))
    assert json.loads(prod["TRAIDING_SIMULATORS"]) == {}  # no simulator in production
    assert (prod["TRAIDING_KEYS_SECRET"], prod["TRAIDING_REQUIRE_ENCRYPTED_KEYS"]) == ("traiding-keys", "true")


def test_in_its_own_namespace_the_operator_reads_the_cluster_wide_kill_switch_and_its_keys_only() -> None:
    objects = render("-f", str(CHART / "values-prod.yaml"), namespace="ai-traiding")
    (own,) = [r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("-own")]
    assert own["metadata"]["namespace"] == "ai-traiding"
    assert own["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [KILL_SWITCH_NAME], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["traiding-keys"], "verbs": ["get"]},
    ]
    # The namespaces it serves (prod: trading) get the run rights; Secrets are read nowhere else.
    assert [r["metadata"]["namespace"] for r in served_roles(objects)] == ["trading"]


def test_the_admission_policy_guards_the_annotations_the_operator_reads_for_the_served_namespaces() -> None:
    objects = render("--set", "watch.scope=namespaces", "--set", "watch.namespaces={a,b}", namespace="ops")
    policies = {p["metadata"]["name"]: p for p in by_kind(objects, "ValidatingAdmissionPolicy")}
    bindings = {b["spec"]["policyName"]: b for b in by_kind(objects, "ValidatingAdmissionPolicyBinding")}
    assert (
        set(policies)
        == set(bindings)
        == {
            "ai-traiding-tradingruns.traiding.io",
            "ai-traiding-kill-switch.traiding.io",
        }
    )
    runs = json.dumps(policies["ai-traiding-tradingruns.traiding.io"])
    assert APPROVED_BY in runs and CREATED_BY in runs and "'traiding-approvers' in request.userInfo.groups" in runs
    operators = {
        v["name"]: v["expression"] for v in policies["ai-traiding-tradingruns.traiding.io"]["spec"]["variables"]
    }
    # The only identity that writes a run's status.
    assert operators["isOperator"] == 'request.userInfo.username in ["system:serviceaccount:ops:ai-traiding"]'
    assert KILL_SWITCH_NAME in json.dumps(policies["ai-traiding-kill-switch.traiding.io"])

    def namespaces(policy: str) -> list[str]:
        [expression] = bindings[policy]["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
        return list(expression["values"])

    assert namespaces("ai-traiding-tradingruns.traiding.io") == ["a", "b"]
    assert namespaces("ai-traiding-kill-switch.traiding.io") == ["a", "b", "ops"]  # and the cluster-wide one
    assert all(b["spec"]["validationActions"] == ["Deny", "Audit"] for b in bindings.values())
    cluster = render("--set", "watch.scope=cluster")
    assert all("matchResources" not in b["spec"] for b in by_kind(cluster, "ValidatingAdmissionPolicyBinding"))
    assert not by_kind(render("--set", "admissionPolicy.enabled=false"), "ValidatingAdmissionPolicy")


def test_network_policies_open_only_dns_the_api_server_and_the_exchanges() -> None:
    objects = render("-f", str(CHART / "values-prod.yaml"))
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(objects, "NetworkPolicy")}
    assert set(policies) == {"ai-traiding-operator", "ai-traiding-nightly"}
    for spec in policies.values():
        assert spec["policyTypes"] == ["Egress"]
    operator_egress = policies["ai-traiding-operator"]["egress"]
    assert [rule["ports"][0]["port"] for rule in operator_egress] == [53, 443, 443]
    exchanges = operator_egress[2]["to"][0]["ipBlock"]
    assert exchanges["cidr"] == "0.0.0.0/0" and "10.0.0.0/8" in exchanges["except"]  # never inside the cluster
    assert len(policies["ai-traiding-nightly"]["egress"]) == 2  # the Job talks to the API server only
    dev = render("-f", str(CHART / "values-dev.yaml"), "--set", "networkPolicy.enabled=true",
                 "--set", "networkPolicy.apiServer.cidrs={10.0.0.1/32}")  # fmt: skip
    dev_operator = [p for p in by_kind(dev, "NetworkPolicy") if p["metadata"]["name"] == "ai-traiding-operator"]
    assert (
        dev_operator[0]["spec"]["egress"][-1]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        == "simulator"
    )
    missing = helm("template", str(CHART), "--kube-version", KUBE_VERSION, "--set", "networkPolicy.enabled=true",
                   check=False)  # fmt: skip
    assert missing.returncode != 0 and "networkPolicy.apiServer.cidrs must list the API server" in missing.stderr


def test_the_operator_names_itself_in_the_runs_leases_after_its_pod() -> None:
    (operator,) = [d for d in by_kind(render(), "Deployment") if d["metadata"]["name"] == "ai-traiding"]
    env = {e["name"]: e for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRAIDING_OPERATOR_IDENTITY"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}

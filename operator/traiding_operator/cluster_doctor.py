"""`traiding doctor`'s cluster checks: what an installation needs to run TradingRuns, each with its fix.

The TradingRun CRD installed and at this version (Helm installs CRDs once and never upgrades them); the
operator alive (its Deployment's ready replicas, or, for an operator outside the cluster, runs' Leases it
renews) and its /metrics answering (through the API server's Service proxy, as Prometheus would scrape it);
the SLOs' PrometheusRule present when the Prometheus Operator is installed; and every Secret an unfinished
run references present with its keys (an encrypted one: its tokens present, since only the operator holds
the keys that decrypt them); and the kill switches of the runs' namespaces and the operator's. Secret values
are decoded to be checked, never shown.
"""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes.client import (
    ApiClient,
    ApiextensionsV1Api,
    AppsV1Api,
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
)
from kubernetes.client.exceptions import ApiException

from traiding import __version__
from traiding.crd import build_crd
from traiding.domain.statemachine import TERMINAL
from traiding.health_check import Check
from traiding.key_encryption import ENCRYPTION_ANNOTATION, FERNET
from traiding.resource import API_GROUP, API_VERSION, KIND, PLURAL, SecretRef
from traiding_operator.credentials import API_KEY, KEYS_FORMAT, SECRET, CredentialsError, credentials_from_secret
from traiding_operator.kill_switch import KILL_SWITCH_NAME, halt_order_of

# The chart's labels (helm/ai-traiding/templates): the operator's Deployment, its metrics Service, its rules.
OPERATOR_SELECTOR = "app.kubernetes.io/part-of=ai-traiding,app.kubernetes.io/component=operator"
METRICS_SELECTOR = "traiding.io/metrics-job=ai-traiding-operator"
RULE_SELECTOR = "app.kubernetes.io/part-of=ai-traiding"
VERSION_LABEL = "app.kubernetes.io/version"
BUILD_INFO = "traiding_build_info"
TIMEOUT_S = 10
CRD_MISSING = "not installed: `kubectl apply -f crds/tradingrun.yaml` (docs/deploy.md)"


def _items(listed: Any) -> list[Any]:
    return list(listed.items or [])


def list_runs(api: ApiClient, namespace: str | None) -> list[dict[str, Any]]:
    objects = CustomObjectsApi(api)
    if namespace:
        listed = objects.list_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, PLURAL, _request_timeout=TIMEOUT_S
        )
    else:
        listed = objects.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL, _request_timeout=TIMEOUT_S)
    return cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])


def unfinished(run: dict[str, Any]) -> bool:
    return (run.get("status") or {}).get("phase") not in TERMINAL


def check_crd(api: ApiClient) -> Check:
    expected = build_crd()
    try:
        installed: Any = ApiextensionsV1Api(api).read_custom_resource_definition(
            expected["metadata"]["name"], _request_timeout=TIMEOUT_S
        )
    except ApiException as error:
        if error.status != 404:
            return Check("TradingRun CRD", False, f"cannot be read (HTTP {error.status} {error.reason})")
        return Check("TradingRun CRD", False, CRD_MISSING)
    labels = installed.metadata.labels or {}
    served = api.sanitize_for_serialization(installed.spec)  # type: ignore[no-untyped-call]
    same = served.get("versions", [{}])[0].get("schema") == expected["spec"]["versions"][0]["schema"]
    at = labels.get(VERSION_LABEL, "an unknown version")
    if at != __version__ or not same:
        return Check(
            "TradingRun CRD",
            False,
            f"installed at {at}{'' if same else ' with another schema'}, this is {__version__}: Helm never upgrades "
            "CRDs, `kubectl apply --server-side --force-conflicts -f helm/ai-traiding/crds/` (docs/deploy.md#upgrades)",
        )
    return Check("TradingRun CRD", True, f"installed and current ({__version__})")


def _fresh_lease_holders(api: ApiClient, runs: list[dict[str, Any]]) -> set[str]:
    """Identities that renew the Lease of some unfinished run within the Lease's duration."""
    holders: set[str] = set()
    now = datetime.now(UTC)
    wanted = {(r["metadata"]["namespace"], r["metadata"]["uid"]) for r in runs if unfinished(r)}
    for lease in _items(CoordinationV1Api(api).list_lease_for_all_namespaces(_request_timeout=TIMEOUT_S)):
        owners = {(lease.metadata.namespace, o.uid) for o in lease.metadata.owner_references or [] if o.kind == KIND}
        spec = lease.spec
        if not owners & wanted or spec is None or spec.renew_time is None or not spec.holder_identity:
            continue
        if (now - spec.renew_time).total_seconds() <= (spec.lease_duration_seconds or 15):
            holders.add(spec.holder_identity)
    return holders


def _operator_deployments(api: ApiClient, namespace: str | None) -> list[Any]:
    apps = AppsV1Api(api)
    if namespace:
        listed = apps.list_namespaced_deployment(
            namespace, label_selector=OPERATOR_SELECTOR, _request_timeout=TIMEOUT_S
        )
    else:
        listed = apps.list_deployment_for_all_namespaces(label_selector=OPERATOR_SELECTOR, _request_timeout=TIMEOUT_S)
    return _items(listed)


def _operator_namespaces(api: ApiClient, namespace: str | None) -> list[str]:
    return [str(d.metadata.namespace) for d in _operator_deployments(api, namespace)]


def check_operator(api: ApiClient, namespace: str | None, runs: list[dict[str, Any]]) -> Check:
    deployments = _operator_deployments(api, namespace)
    ready = [d for d in deployments if (d.status.ready_replicas or 0) >= 1]
    if ready:
        return Check(
            "operator",
            True,
            "; ".join(
                f"Deployment {d.metadata.namespace}/{d.metadata.name}: {d.status.ready_replicas}/{d.spec.replicas} "
                f"ready ({d.spec.template.spec.containers[0].image})"
                for d in ready
            ),
        )
    holders = _fresh_lease_holders(api, runs)
    if holders:
        return Check("operator", True, f"no Deployment; runs' Leases renewed by {', '.join(sorted(holders))}")
    if deployments:
        d = deployments[0]
        where = f"-n {d.metadata.namespace}"
        if not d.spec.replicas:
            return Check(
                "operator",
                False,
                f"Deployment {d.metadata.namespace}/{d.metadata.name} is scaled to 0: no run is driven; "
                f"`kubectl {where} scale deployment {d.metadata.name} --replicas=1`",
            )
        return Check(
            "operator",
            False,
            f"Deployment {d.metadata.namespace}/{d.metadata.name}: 0 of {d.spec.replicas} replicas ready: "
            f"`kubectl {where} describe deployment {d.metadata.name}`, `kubectl {where} logs deploy/{d.metadata.name}`",
        )
    return Check(
        "operator",
        False,
        "none found: no Deployment labelled app.kubernetes.io/part-of=ai-traiding and no run's Lease renewed; "
        "`helm install ai-traiding helm/ai-traiding` (docs/deploy.md)",
    )


def _build_info(text: str) -> str | None:
    """The version a /metrics page's traiding_build_info states, or None when it is not an operator's."""
    for line in text.splitlines():
        if line.startswith(BUILD_INFO + "{") and 'component="operator"' in line:
            return line.split('version="', 1)[1].split('"', 1)[0]
    return None


def _metrics_check(source: str, text: str) -> Check:
    version = _build_info(text)
    if version is None:
        return Check("metrics", False, f"{source} answers but serves no {BUILD_INFO} of an operator")
    return Check("metrics", True, f"{source} serves the operator's metrics (version {version})")


def check_metrics(api: ApiClient, namespace: str | None, url: str | None) -> Check:
    if url:
        if not url.startswith(("http://", "https://")):
            return Check("metrics", False, f"{url}: --metrics-url takes an http:// or https:// URL")
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # nosec B310  # http(s) only, above
                return _metrics_check(url, response.read().decode(errors="replace"))
        except OSError as error:
            return Check("metrics", False, f"{url}: {error}")
    core = CoreV1Api(api)
    if namespace:
        listed = core.list_namespaced_service(namespace, label_selector=METRICS_SELECTOR, _request_timeout=TIMEOUT_S)
    else:
        listed = core.list_service_for_all_namespaces(label_selector=METRICS_SELECTOR, _request_timeout=TIMEOUT_S)
    services = _items(listed)
    if not services:
        return Check("metrics", None, "no metrics Service (metrics.enabled=false?); pass --metrics-url to check one")
    service = services[0]
    source = f"Service {service.metadata.namespace}/{service.metadata.name}"
    try:
        text = core.connect_get_namespaced_service_proxy_with_path(
            f"{service.metadata.name}:metrics", service.metadata.namespace, "metrics", _request_timeout=TIMEOUT_S
        )
    except ApiException as error:
        return Check(
            "metrics", False, f"{source}: no answer through the API server (HTTP {error.status} {error.reason})"
        )
    return _metrics_check(source, str(text))


def check_prometheus_rule(api: ApiClient, namespace: str | None) -> Check:
    objects = CustomObjectsApi(api)
    try:
        if namespace:
            listed = objects.list_namespaced_custom_object(
                "monitoring.coreos.com",
                "v1",
                namespace,
                "prometheusrules",
                label_selector=RULE_SELECTOR,
                _request_timeout=TIMEOUT_S,
            )
        else:
            listed = objects.list_cluster_custom_object(
                "monitoring.coreos.com",
                "v1",
                "prometheusrules",
                label_selector=RULE_SELECTOR,
                _request_timeout=TIMEOUT_S,
            )
    except ApiException as error:
        if error.status == 404:
            return Check(
                "PrometheusRule",
                None,
                "the Prometheus Operator is not installed: no SLO alerts; `traiding slo render` for a plain Prometheus",
            )
        return Check("PrometheusRule", False, f"cannot be listed (HTTP {error.status} {error.reason})")
    rules = cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])
    if not rules:
        return Check(
            "PrometheusRule",
            False,
            "none of ai-traiding: the SLO alerts are not loaded; "
            "`helm upgrade --set monitoring.prometheusRule.enabled=true`",
        )
    names = ", ".join(f"{r['metadata']['namespace']}/{r['metadata']['name']}" for r in rules)
    return Check("PrometheusRule", True, names)


def _secret_problem(secret: Any, ref: SecretRef, namespace: str) -> str | None:
    data = {k: str(v) for k, v in (secret.data or {}).items()}
    annotations = secret.metadata.annotations or {}
    if annotations.get(ENCRYPTION_ANNOTATION) == FERNET:
        missing = [key for key in (API_KEY, SECRET) if not data.get(key)]
        return (
            f"Secret {ref.name} in namespace {namespace} has no key {missing[0]!r} ({KEYS_FORMAT})" if missing else None
        )
    try:
        credentials_from_secret(data, annotations, ref, namespace)
    except CredentialsError as error:
        return str(error)
    return None


def check_run_secrets(api: ApiClient, runs: list[dict[str, Any]]) -> list[Check]:
    core = CoreV1Api(api)
    checks = []
    for run in runs:
        ref_data = ((run.get("spec") or {}).get("exchange") or {}).get("credentialsSecretRef")
        if not ref_data or not unfinished(run):
            continue
        namespace, name = run["metadata"]["namespace"], run["metadata"]["name"]
        ref = SecretRef.model_validate(ref_data)
        label = f"Secret of {namespace}/{name}"
        try:
            secret: Any = core.read_namespaced_secret(ref.name, namespace, _request_timeout=TIMEOUT_S)
        except ApiException as error:
            reason = "not found" if error.status == 404 else f"cannot be read (HTTP {error.status} {error.reason})"
            checks.append(Check(label, False, f"Secret {ref.name} in namespace {namespace}: {reason}"))
            continue
        problem = _secret_problem(secret, ref, namespace)
        encrypted = (secret.metadata.annotations or {}).get(ENCRYPTION_ANNOTATION) == FERNET
        detail = f"Secret {ref.name} has {API_KEY!r} and {SECRET!r}" + (" (encrypted)" if encrypted else "")
        checks.append(Check(label, problem is None, problem or detail))
    if not checks:
        checks.append(Check("run Secrets", None, "no unfinished run references a Secret"))
    return checks


def check_kill_switches(api: ApiClient, namespaces: list[str]) -> Check:
    """Set (halting live runs) is reported as a failure: trading is stopped until a person clears it."""
    if not namespaces:
        return Check("kill switch", None, "no namespace to look in (no run, no operator found)")
    core = CoreV1Api(api)
    engaged, clear = [], []
    for namespace in namespaces:
        source = f"{namespace}/{KILL_SWITCH_NAME}"
        try:
            config_map = core.read_namespaced_config_map(KILL_SWITCH_NAME, namespace, _request_timeout=TIMEOUT_S)
        except ApiException as error:
            if error.status != 404:
                return Check("kill switch", False, f"{source} cannot be read (HTTP {error.status} {error.reason})")
            clear.append(namespace)
            continue
        order = halt_order_of(config_map.data, source)
        if order is None:
            clear.append(namespace)
        else:
            how = "halts and flattens" if order.flatten else "halts"
            engaged.append(f"{source} {how} live runs{f' ({order.reason})' if order.reason else ''}")
    if engaged:
        return Check(
            "kill switch",
            False,
            "; ".join(engaged) + f": clear it with `kubectl -n NS delete configmap {KILL_SWITCH_NAME}`, then resume "
            "each run (docs/deploy.md#kill-switch)",
        )
    return Check("kill switch", True, f"clear in {', '.join(clear)}")


def cluster_checks(
    api: ApiClient, namespace: str | None, operator_namespace: str | None, metrics_url: str | None
) -> tuple[list[Check], list[dict[str, Any]]]:
    """The checks, and the unfinished runs they looked at (for the exchange checks)."""
    crd = check_crd(api)
    missing_crd = crd.detail == CRD_MISSING
    runs = [] if missing_crd else [r for r in list_runs(api, namespace) if unfinished(r)]
    switch_namespaces = {r["metadata"]["namespace"] for r in runs} | ({namespace} if namespace else set())
    switch_namespaces |= set(_operator_namespaces(api, operator_namespace))
    checks = [
        crd,
        check_operator(api, operator_namespace, runs),
        check_metrics(api, operator_namespace, metrics_url),
        check_prometheus_rule(api, operator_namespace),
        *check_run_secrets(api, runs),
        check_kill_switches(api, sorted(switch_namespaces)),
    ]
    return checks, runs

"""`traiding submit RUN.yaml`: create a TradingRun in a cluster (what the chart's nightly CronJob runs).

The manifest is checked as `traiding run` checks it (same errors, naming the field) before anything is
sent; `metadata.generateName` is supported, so a CronJob can submit the same template every night. The run is
annotated with its creator (`traiding.io/created-by`, the user the API server knows this client as, from a
SelfSubjectReview): the chart's admission policy requires it on live runs, and nobody may approve a run they
created. Prints the created run's name. Exits 0 when created, 2 for a bad manifest, 1 when the API refused it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes.client import ApiClient, AuthenticationV1Api, CustomObjectsApi, V1SelfSubjectReview
from kubernetes.client.exceptions import ApiException

from traiding.errors import UserError
from traiding.manifest import parse_manifest
from traiding.resource import API_GROUP, API_VERSION, PLURAL
from traiding_operator.annotations import APPROVED_BY, CREATED_BY
from traiding_operator.kube import api_client, client_configuration

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
REQUEST_TIMEOUT_S = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="TradingRun manifest (YAML), with metadata.name or generateName")
    parser.add_argument(
        "--namespace", "-n", help="namespace to create it in (default: the manifest's, the Pod's, or default)"
    )
    parser.add_argument("--label", "-l", action="append", default=[], metavar="K=V", help="extra label (repeatable)")


def read_document(path: Path) -> dict[str, Any]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise UserError(f"{path}: expected exactly one TradingRun document")
    return cast(dict[str, Any], documents[0])


def checked(document: dict[str, Any], source: str) -> None:
    """The manifest's checks (the model's and the strategy registry's), also for a generateName-only one."""
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not (metadata.get("name") or metadata.get("generateName")):
        raise UserError(f"{source}: metadata.name or metadata.generateName is required")
    # The model needs a name; a generated one will be the prefix plus a suffix, so check with such a name.
    named = {**metadata, "name": metadata.get("name") or f"{metadata['generateName']}x"}
    parse_manifest({**document, "metadata": named}, source)
    if APPROVED_BY in (metadata.get("annotations") or {}):
        raise UserError(
            f"{source}: metadata.annotations.{APPROVED_BY}: a run is approved once it waits at its approval gate, "
            "never at creation"
        )


def with_labels(document: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    extra = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--label {item!r}: expected KEY=VALUE")
        extra[key] = value
    metadata = dict(document["metadata"])
    metadata["labels"] = {**(metadata.get("labels") or {}), **extra}
    return {**document, "metadata": metadata}


def with_creator(document: dict[str, Any], username: str | None) -> dict[str, Any]:
    """The manifest annotated with who creates it (kept as it is when the manifest names someone already)."""
    if not username:
        return document
    metadata = dict(document["metadata"])
    metadata["annotations"] = {CREATED_BY: username, **(metadata.get("annotations") or {})}
    return {**document, "metadata": metadata}


def whoami(api: ApiClient) -> str | None:
    """The user name the API server sees for this client (None where SelfSubjectReview is not served)."""
    try:
        review = AuthenticationV1Api(api).create_self_subject_review(
            V1SelfSubjectReview(), _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as error:
        if error.status in (403, 404):
            return None
        raise
    user = review.status.user_info if review.status else None
    return str(user.username) if user is not None and user.username else None


def target_namespace(document: dict[str, Any], given: str | None) -> str:
    if given:
        return given
    if document["metadata"].get("namespace"):
        return str(document["metadata"]["namespace"])
    if IN_CLUSTER_NAMESPACE.is_file():
        return IN_CLUSTER_NAMESPACE.read_text().strip()
    return "default"


def create(api: ApiClient, namespace: str, document: dict[str, Any]) -> str:
    body = {**document, "metadata": {**document["metadata"], "namespace": namespace}}
    created = CustomObjectsApi(api).create_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, PLURAL, body, _request_timeout=REQUEST_TIMEOUT_S
    )
    return str(cast(dict[str, Any], created)["metadata"]["name"])


def run(args: argparse.Namespace) -> int:
    document = read_document(args.manifest)
    checked(document, str(args.manifest))
    document = with_labels(document, args.label)
    namespace = target_namespace(document, args.namespace)
    api = api_client(client_configuration())
    try:
        name = create(api, namespace, with_creator(document, whoami(api)))
    except ApiException as error:
        print(f"error: the API server refused the TradingRun (HTTP {error.status}): {error.reason}", file=sys.stderr)
        if error.body:
            print(str(error.body)[:2000], file=sys.stderr)
        return 1
    finally:
        api.close()  # type: ignore[no-untyped-call]
    print(f"tradingrun.{API_GROUP}/{name} created in namespace {namespace}")
    return 0

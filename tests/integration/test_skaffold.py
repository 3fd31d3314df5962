"""skaffold.yaml, checked against skaffold's own schema for the config version it declares.

skaffold itself cannot be built here: the Go module proxy refuses its module ("403 Forbidden ... This module
version is not available" for github.com/GoogleContainerTools/skaffold/v2), so the check is the schema:
the definitions of skaffold/v4beta14 that this file uses, transcribed from skaffold's
docs-v2/content/en/schemas/v4beta14.json with their `additionalProperties: false` (a misspelt key fails),
plus what the schema cannot know: the commands, paths, chart values and Service it names exist.
"""

from __future__ import annotations

import shlex
from typing import Any

import jsonschema
import yaml

from tests.cluster_plugin import REPO
from tests.integration.test_chart import CHART, render

STRING = {"type": "string"}
STRINGS = {"type": "array", "items": STRING}
STRING_MAP = {"type": "object", "additionalProperties": STRING}


def closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False, "required": list(required)}


DEFINITIONS: dict[str, Any] = {
    "Metadata": closed({"name": STRING, "labels": STRING_MAP, "annotations": STRING_MAP}),
    "LocalBuild": closed(
        {
            "concurrency": {"type": "integer"},
            "push": {"type": "boolean"},
            "tryImportMissing": {"type": "boolean"},
            "useBuildkit": {"type": "boolean"},
            "useDockerCLI": {"type": "boolean"},
        }
    ),
    "TagPolicy": closed(
        {
            "customTemplate": {"type": "object"},
            "dateTime": {"type": "object"},
            "envTemplate": closed({"template": STRING}, ("template",)),
            "gitCommit": {"type": "object"},
            "inputDigest": closed({}),
            "sha256": closed({}),
        }
    ),
    "CustomArtifact": closed(
        {
            "buildCommand": STRING,
            "dependencies": closed(
                {"command": STRING, "dockerfile": {"type": "object"}, "ignore": STRINGS, "paths": STRINGS}
            ),
        }
    ),
    "Artifact": closed(
        {
            "image": STRING,
            "context": STRING,
            "custom": {"$ref": "#/definitions/CustomArtifact"},
            "docker": {"type": "object"},
            "requires": {"type": "array"},
            "sync": {"type": "object"},
            "hooks": {"type": "object"},
            "platforms": STRINGS,
            "runtimeType": STRING,
        },
        ("image",),
    ),
    "BuildConfig": closed(
        {
            "artifacts": {"type": "array", "items": {"$ref": "#/definitions/Artifact"}},
            "local": {"$ref": "#/definitions/LocalBuild"},
            "tagPolicy": {"$ref": "#/definitions/TagPolicy"},
            "insecureRegistries": STRINGS,
            "platforms": STRINGS,
            "hooks": {"type": "object"},
        }
    ),
    "HelmRelease": closed(
        {
            "name": STRING,
            "chartPath": STRING,
            "namespace": STRING,
            "createNamespace": {"type": "boolean"},
            "wait": {"type": "boolean"},
            "valuesFiles": STRINGS,
            "setValueTemplates": {"type": "object"},
            "setValues": {"type": "object"},
            "setFiles": STRING_MAP,
            "version": STRING,
            "upgradeOnChange": {"type": "boolean"},
            "recreatePods": {"type": "boolean"},
            "skipBuildDependencies": {"type": "boolean"},
            "skipTests": {"type": "boolean"},
            "remoteChart": STRING,
            "repo": STRING,
            "dependsOn": STRINGS,
            "overrides": {},
            "packaged": {"type": "object"},
            "useHelmSecrets": {"type": "boolean"},
        },
        ("name",),
    ),
    "LegacyHelmDeploy": closed(
        {
            "releases": {"type": "array", "items": {"$ref": "#/definitions/HelmRelease"}},
            "flags": {"type": "object"},
            "hooks": {"type": "object"},
            "concurrency": {"type": "integer"},
        }
    ),
    "DeployConfig": closed(
        {
            "helm": {"$ref": "#/definitions/LegacyHelmDeploy"},
            "kubectl": {"type": "object"},
            "kubeContext": STRING,
            "statusCheck": {"type": "boolean"},
            "statusCheckDeadlineSeconds": {"type": "integer"},
            "tolerateFailuresUntilDeadline": {"type": "boolean"},
            "logs": {"type": "object"},
        }
    ),
    "PortForwardResource": closed(
        {
            "resourceType": STRING,
            "resourceName": STRING,
            "namespace": STRING,
            "port": {"type": ["integer", "string"]},
            "address": STRING,
            "localPort": {"type": "integer"},
        }
    ),
    "Activation": closed({"command": STRING, "env": STRING, "kubeContext": STRING}),
    "JSONPatch": closed({"op": STRING, "path": STRING, "from": STRING, "value": {}}, ("path",)),
    "Profile": closed(
        {
            "name": STRING,
            "activation": {"type": "array", "items": {"$ref": "#/definitions/Activation"}},
            "requiresAllActivations": {"type": "boolean"},
            "patches": {"type": "array", "items": {"$ref": "#/definitions/JSONPatch"}},
            "build": {"$ref": "#/definitions/BuildConfig"},
            "deploy": {"$ref": "#/definitions/DeployConfig"},
            "portForward": {"type": "array", "items": {"$ref": "#/definitions/PortForwardResource"}},
        },
        ("name",),
    ),
}
SCHEMA = {
    "definitions": DEFINITIONS,
    **closed(
        {
            "apiVersion": {"const": "skaffold/v4beta14"},
            "kind": {"const": "Config"},
            "metadata": {"$ref": "#/definitions/Metadata"},
            "build": {"$ref": "#/definitions/BuildConfig"},
            "deploy": {"$ref": "#/definitions/DeployConfig"},
            "portForward": {"type": "array", "items": {"$ref": "#/definitions/PortForwardResource"}},
            "profiles": {"type": "array", "items": {"$ref": "#/definitions/Profile"}},
        },
        ("apiVersion", "kind"),
    ),
}


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    return loaded


def test_skaffold_yaml_matches_its_schema_version() -> None:
    jsonschema.validate(config(), SCHEMA)


def test_the_schema_refuses_a_misspelt_key() -> None:
    broken = config()
    broken["deploy"]["helm"]["releases"][0]["valueFiles"] = ["values.yaml"]  # skaffold's key is valuesFiles
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(broken))
    assert errors and "valueFiles" in str(errors[0].message)


def test_what_skaffold_yaml_names_exists() -> None:
    cfg = config()
    (artifact,) = cfg["build"]["artifacts"]
    commands = [artifact["custom"]["buildCommand"]]
    commands += [p["value"] for prof in cfg["profiles"] for p in prof["patches"] if p["path"].endswith("buildCommand")]
    for command in commands:
        for part in command.split("&&"):
            words = shlex.split(part)
            assert words[0] == ".venv/bin/python" and (REPO / words[1]).is_file(), part
    for path in artifact["custom"]["dependencies"]["paths"]:
        assert (REPO / path).exists(), path
    (release,) = cfg["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"]) == CHART
    for values in release["valuesFiles"]:
        assert (REPO / values).is_file()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for dotted in release["setValueTemplates"]:
        node = values
        for key in dotted.split("."):
            assert key in node, f"{dotted} is not a chart value"
            node = node[key]
    services = {o["metadata"]["name"] for o in render("-f", str(CHART / "values-dev.yaml")) if o["kind"] == "Service"}
    for forward in cfg["portForward"]:
        assert forward["resourceName"] in services

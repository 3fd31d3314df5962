"""Generate the TradingRun CustomResourceDefinition from the pydantic model.

Pydantic writes JSON Schema (draft 2020-12); the API server wants a *structural* OpenAPI v3.0
schema: no `$ref`, no `anyOf` for optionals, boolean `exclusiveMinimum`, no `title`, and
`x-kubernetes-preserve-unknown-fields` instead of free-form objects. This module does that
translation once, so the model stays the single source of truth.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from traiding import __version__, resource
from traiding.resource import TradingRunSpec, TradingRunStatus

_DROP_KEYS = {"title", "$defs"}


class SchemaError(ValueError):
    """The model cannot be expressed as a structural schema (a bug in the model, caught by tests)."""


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o != {"type": "null"}]
        if len(options) != 1:
            raise SchemaError(f"unions other than Optional[X] are not structural: {options}")
        merged = dict(options[0])
        merged.update(node)
        node = merged
        node["nullable"] = True
        if node.get("default", ...) is None:
            del node["default"]
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").split("/")[-1]])
        # Keys written next to the reference (the field's description, default) win.
        target.update(node)
        node = target
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[plain] = node.pop(bound)
            node[bound] = True
    if node.get("additionalProperties") is False:
        # Structural schemas may not combine it with `properties`; the API server prunes instead.
        node.pop("additionalProperties")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
    elif node.get("additionalProperties") is True:
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    for key in _DROP_KEYS:
        node.pop(key, None)
    return {key: _resolve(value, defs) for key, value in node.items()}


def _default_nested_objects(node: dict[str, Any]) -> None:
    """Give optional object properties `default: {}` so the API server fills in their own defaults."""
    required = set(node.get("required", []))
    for name, prop in node.get("properties", {}).items():
        is_object = prop.get("type") == "object" and "properties" in prop
        if is_object and name not in required and not prop.get("nullable") and "default" not in prop:
            prop["default"] = {}
        _walk_objects(prop)


def _walk_objects(node: dict[str, Any]) -> None:
    if node.get("type") == "object":
        _default_nested_objects(node)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        _walk_objects(node["items"])


def structural_schema(model: type[Any], *, mode: str = "validation") -> dict[str, Any]:
    raw = model.model_json_schema(mode=mode, by_alias=True)
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    schema.pop("description", None)
    schema["type"] = "object"
    _walk_objects(schema)
    return schema


def missing_descriptions(schema: dict[str, Any], path: str = "") -> list[str]:
    """Property paths without a description: `kubectl explain` would show nothing for them."""
    missing: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        if not prop.get("description"):
            missing.append(here)
        missing.extend(missing_descriptions(prop, here))
    items = schema.get("items")
    if isinstance(items, dict):
        missing.extend(missing_descriptions(items, f"{path}[]"))
    return missing


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Current phase."},
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "description": "dry-run or live."},
    {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy.name", "description": "Strategy."},
    {"name": "Symbols", "type": "string", "jsonPath": ".spec.market.symbols", "description": "Symbols."},
    {
        "name": "ROI",
        "type": "number",
        "format": "float",
        "jsonPath": ".status.summary.roiPct",
        "description": "Return on initial capital, percent.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    spec_schema = structural_schema(TradingRunSpec)
    spec_schema["description"] = "What to run: market, strategy, capital, risk limits, gates and session."
    status_schema = structural_schema(TradingRunStatus, mode="serialization")
    status_schema["description"] = "Where the run is: phase, conditions, per-phase results and summary."
    status_schema["properties"]["conditions"]["x-kubernetes-list-type"] = "map"
    status_schema["properties"]["conditions"]["x-kubernetes-list-map-keys"] = ["type"]
    problems = missing_descriptions(spec_schema, "spec") + missing_descriptions(status_schema, "status")
    if problems:
        raise SchemaError(f"fields without a description: {', '.join(problems)}")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{resource.PLURAL}.{resource.API_GROUP}",
            # Which release of the project made it: `traiding doctor` compares it with the operator's version.
            "labels": {
                "app.kubernetes.io/name": "ai-traiding",
                "app.kubernetes.io/part-of": "ai-traiding",
                "app.kubernetes.io/version": __version__,
            },
        },
        "spec": {
            "group": resource.API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.KIND,
                "listKind": f"{resource.KIND}List",
                "plural": resource.PLURAL,
                "singular": resource.SINGULAR,
                "shortNames": list(resource.SHORT_NAMES),
                "categories": ["traiding"],
            },
            "versions": [
                {
                    "name": resource.API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "A TradingRun takes a strategy through data check, backtest, exchange "
                                "check, approval (live only), a trading session and a report."
                            ),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version."},
                                "kind": {"type": "string", "description": "Kind: TradingRun."},
                                # The API server allows nothing but the type here (metadata is implicit).
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    header = "# Generated by `traiding crd` from traiding/resource.py. Do not edit by hand.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=110)

"""docs/api-reference.md, generated: every field of the TradingRun CRD (type, default, validation,
description) from its schema, and every `traiding` command with its options from the argument parsers.

    python3 scripts/api_reference.py          rewrite docs/api-reference.md
    python3 scripts/api_reference.py --check  exit 1 when the committed file is not what this generates

A test runs --check, so the reference cannot drift from the CRD or the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from traiding.cli import SUBCOMMANDS, _load
from traiding.crd import build_crd

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "docs" / "api-reference.md"
VALIDATION_KEYS = (
    ("minimum", ">="),
    ("maximum", "<="),
    ("minLength", "min length"),
    ("maxLength", "max length"),
    ("minItems", "min items"),
    ("maxItems", "max items"),
    ("maxProperties", "max entries"),
    ("pattern", "pattern"),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type(node: dict[str, Any]) -> str:
    kind = str(node.get("type", "object" if "properties" in node else "any"))
    if kind == "array":
        kind = f"array of {_type(node.get('items', {}))}"
    elif kind == "object" and "additionalProperties" in node:
        kind = f"map of {_type(node['additionalProperties'])}"
    if node.get("x-kubernetes-preserve-unknown-fields"):
        kind += " (free-form)"
    if node.get("nullable"):
        kind += ", nullable"
    return kind


def _validation(node: dict[str, Any]) -> str:
    rules = []
    if "enum" in node:
        rules.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    for key, label in VALIDATION_KEYS:
        if key in node:
            strict = (key == "minimum" and node.get("exclusiveMinimum")) or (
                key == "maximum" and node.get("exclusiveMaximum")
            )
            shown = label.replace("=", "") if strict else label
            rules.append(f"{shown} `{node[key]}`")
    rules += [f"rule: {r['message']}" for r in node.get("x-kubernetes-validations", [])]
    return "; ".join(rules)


def _rows(node: dict[str, Any], path: str, required: set[str]) -> list[str]:
    rows = []
    for name, child in node.get("properties", {}).items():
        here = f"{path}.{name}"
        default = child.get("default")
        shown_default = "" if default in (None, {}) else f"`{default}`"
        must = " (required)" if name in required else ""
        rows.append(
            f"| `{here}`{must} | {_cell(_type(child))} | {_cell(shown_default)} | {_cell(_validation(child))} "
            f"| {_cell(child.get('description', ''))} |"
        )
        target = child.get("items", child) if child.get("type") == "array" else child
        rows += _rows(target, here + ("[]" if child.get("type") == "array" else ""), set(target.get("required", [])))
    return rows


def crd_reference() -> list[str]:
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    names = crd["spec"]["names"]
    lines = [
        f"## {names['kind']} ({crd['spec']['group']}/{version['name']})",
        "",
        f"Namespaced; plural `{names['plural']}`, short names {', '.join(f'`{n}`' for n in names['shortNames'])}. "
        "Printer columns: " + ", ".join(c["name"] for c in version["additionalPrinterColumns"]) + ".",
        "",
    ]
    for part in ("spec", "status"):
        node = schema["properties"][part]
        lines += [f"### {part}", "", _cell(node.get("description", "")), ""]
        rules = [r["message"] for r in node.get("x-kubernetes-validations", [])]
        if rules:
            lines += ["Rules the API server enforces on the whole spec: " + "; ".join(rules) + ".", ""]
        lines += ["| field | type | default | validation | description |", "| --- | --- | --- | --- | --- |"]
        lines += _rows(node, part, set(node.get("required", [])))
        lines.append("")
    return lines


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().split())[len("usage: ") :]


def cli_reference() -> list[str]:
    lines = ["## The `traiding` command", ""]
    for name, (module, help_text) in SUBCOMMANDS.items():
        parser = argparse.ArgumentParser(prog=f"traiding {name}", description=help_text)
        _load(module).add_arguments(parser)
        lines += [
            f"### traiding {name}",
            "",
            help_text[0].upper() + help_text[1:] + ".",
            "",
            f"    {_usage(parser)}",
            "",
        ]
        options = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
        if options:
            lines += ["| argument | default | meaning |", "| --- | --- | --- |"]
            for action in options:
                flag = ", ".join(action.option_strings) or action.dest
                default = "" if action.default in (None, False, [], argparse.SUPPRESS) else f"`{action.default}`"
                lines.append(f"| `{flag}` | {_cell(default)} | {_cell(action.help or '')} |")
            lines.append("")
    return lines


def render() -> str:
    header = [
        "# API reference",
        "",
        "Generated by `python3 scripts/api_reference.py` from the CRD (`traiding crd`, itself generated from",
        "traiding/resource.py) and from the command's argument parsers; a test fails when this file is stale.",
        "",
    ]
    return "\n".join(header + crd_reference() + cli_reference()).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python3 scripts/api_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

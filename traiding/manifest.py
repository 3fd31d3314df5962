"""Read a TradingRun manifest from a YAML file, with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from traiding.domain.strategies import get_strategy
from traiding.errors import UserError
from traiding.resource import TradingRun, field_path


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        path = field_path(tuple(item["loc"]))
        where = f"{prefix}.{path}" if prefix and path else (path or prefix or "manifest")
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def parse_manifest(document: object, source: str = "manifest") -> TradingRun:
    if not isinstance(document, dict):
        raise UserError(f"{source}: expected a TradingRun object, got {type(document).__name__}")
    try:
        run = TradingRun.model_validate(document)
    except ValidationError as exc:
        raise UserError(f"{source}: invalid TradingRun: {describe_validation_error(exc)}") from None
    try:
        # The schema cannot know each strategy's parameters; the registry does, and names the valid ones.
        get_strategy(run.spec.strategy.name, run.spec.strategy.params)
    except UserError as exc:
        raise UserError(f"{source}: invalid TradingRun: spec.strategy: {exc}") from None
    return run


def load_manifest(path: Path) -> TradingRun:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if len(documents) != 1:
        raise UserError(f"{path}: expected exactly one TradingRun document, found {len(documents)}")
    return parse_manifest(documents[0], str(path))

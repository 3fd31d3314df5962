"""What every strategy is: validated parameters in, entry and exit signals on candle closes out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from traiding.domain.candles import Candles
from traiding.errors import UserError

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


class UnknownStrategyError(UserError, ValueError):
    """No strategy of that name; the message lists the registered ones."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        super().__init__(f"unknown strategy {name!r}; available strategies: {', '.join(available)}")


class StrategyParamError(UserError, ValueError):
    """Parameters a strategy cannot take; the message names the parameter and lists the valid ones."""

    def __init__(self, strategy: str, parameter: str | None, problem: str, valid: str) -> None:
        self.strategy = strategy
        self.parameter = parameter
        self.problem = problem
        where = f"parameter {parameter!r}" if parameter else "parameters"
        super().__init__(f"strategy {strategy}: {where}: {problem}; valid parameters: {valid}")


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: frozen, no unknown names, numbers also accepted as text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_from_text(cls, value: Any) -> Any:
        # The command line passes `--param fast=20` as text and manifests may say 20.0 for an integer:
        # read the number, and let the field's type decide whether a fraction is acceptable.
        if isinstance(value, str):
            text = value.strip()
            for parse in (int, float):
                try:
                    return parse(text)
                except ValueError:
                    continue
        return value


@dataclass(frozen=True, eq=False)
class Signals:
    """Entry and exit signals, one per candle, known at that candle's close (orders fill at the next open)."""

    entries: BoolArray
    exits: BoolArray

    def __post_init__(self) -> None:
        if self.entries.shape != self.exits.shape or self.entries.ndim != 1:
            raise ValueError(f"entries {self.entries.shape} and exits {self.exits.shape} must be equal 1-d shapes")
        if self.entries.dtype != np.bool_ or self.exits.dtype != np.bool_:
            raise ValueError("entries and exits must be boolean arrays")

    def __len__(self) -> int:
        return int(self.entries.shape[0])


P = TypeVar("P", bound=StrategyParams)


class Strategy(ABC, Generic[P]):
    """A long-only strategy: `signals` marks the closes to enter and to exit on.

    Subclasses set `name`, `description` and `params_model` and implement `warmup` and `_signals`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    params_model: ClassVar[type[StrategyParams]]

    def __init__(self, params: P) -> None:
        self.params = params

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Candles needed before the first one that can carry a signal (its index)."""

    @abstractmethod
    def _signals(self, candles: Candles) -> tuple[BoolArray, BoolArray]:
        """Raw entries and exits; `signals` clears the warm-up."""

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        """The lines the strategy decides on, by label, for charts (none by default)."""
        return {}

    def signals(self, candles: Candles) -> Signals:
        entries, exits = self._signals(candles)
        entries = np.asarray(entries, dtype=np.bool_).copy()
        exits = np.asarray(exits, dtype=np.bool_).copy()
        entries[: self.warmup] = False
        exits[: self.warmup] = False
        return Signals(entries, exits)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({values})"


def describe_params(model: type[StrategyParams]) -> str:
    """'fast (int, default 20), slow (int, default 50)' for error messages and help texts."""
    parts = []
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        type_name = getattr(annotation, "__name__", str(annotation))
        parts.append(f"{field_name} ({type_name}, default {field.default!r})")
    return ", ".join(parts)


def build_params(strategy: str, model: type[P], values: Mapping[str, Any]) -> P:
    """`values` validated into `model`, or a `StrategyParamError` naming the first bad parameter."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        error = exc.errors()[0]
        location = [str(part) for part in error.get("loc", ())]
        parameter = location[0] if location else None
        if error["type"] == "extra_forbidden":
            problem = "unknown parameter"
        else:
            given = f" (got {error['input']!r})" if parameter and "input" in error else ""
            problem = str(error["msg"]).removeprefix("Value error, ") + given
            if not parameter:
                parameter = _parameter_named_in(problem, model)
        raise StrategyParamError(strategy, parameter, problem, describe_params(model)) from None


def _parameter_named_in(message: str, model: type[StrategyParams]) -> str | None:
    """A cross-field rule (slow > fast) names its parameter first in its message."""
    for word in message.replace(",", " ").split():
        if word in model.model_fields:
            return word
    return None

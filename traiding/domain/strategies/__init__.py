"""The strategy registry: `get_strategy("sma-crossover", {"fast": 20, "slow": 50}).signals(candles)`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traiding.domain.strategies.base import (
    Signals,
    Strategy,
    StrategyParamError,
    StrategyParams,
    UnknownStrategyError,
    build_params,
    describe_params,
)
from traiding.domain.strategies.bollinger import BollingerBreakout, BollingerParams
from traiding.domain.strategies.crossover import (
    EmaCrossover,
    EmaCrossoverParams,
    SmaCrossover,
    SmaCrossoverParams,
)
from traiding.domain.strategies.rsi import RsiMeanReversion, RsiParams

__all__ = [
    "BollingerBreakout",
    "BollingerParams",
    "EmaCrossover",
    "EmaCrossoverParams",
    "RsiMeanReversion",
    "RsiParams",
    "Signals",
    "SmaCrossover",
    "SmaCrossoverParams",
    "Strategy",
    "StrategyParamError",
    "StrategyParams",
    "UnknownStrategyError",
    "available_strategies",
    "get_strategy",
    "strategy_class",
    "strategy_help",
]

_REGISTRY: dict[str, type[Strategy[Any]]] = {
    cls.name: cls for cls in (SmaCrossover, EmaCrossover, RsiMeanReversion, BollingerBreakout)
}


def available_strategies() -> list[str]:
    """The registered strategy names, sorted."""
    return sorted(_REGISTRY)


def strategy_class(name: str) -> type[Strategy[Any]]:
    """The class registered as `name` (also found as sma_crossover or SMA-Crossover)."""
    key = name.strip().lower().replace("_", "-")
    try:
        return _REGISTRY[key]
    except KeyError:
        raise UnknownStrategyError(name, available_strategies()) from None


def get_strategy(name: str, params: Mapping[str, Any] | None = None) -> Strategy[Any]:
    """The strategy `name` with `params` (unset ones take their defaults; numbers may be given as text).

    Raises `UnknownStrategyError` listing the valid names, or `StrategyParamError` naming the bad
    parameter and listing the valid ones with their types and defaults.
    """
    cls = strategy_class(name)
    return cls(build_params(cls.name, cls.params_model, params or {}))


def strategy_help() -> str:
    """One paragraph per strategy: name, what it does, parameters with types and defaults."""
    return "\n".join(
        f"{cls.name}: {cls.description}\n  parameters: {describe_params(cls.params_model)}"
        for cls in (_REGISTRY[name] for name in available_strategies())
    )

"""RSI mean reversion: buy the recovery from oversold, sell into overbought."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from traiding.domain import indicators
from traiding.domain.candles import Candles
from traiding.domain.strategies.base import BoolArray, FloatArray, Strategy, StrategyParams

# Wilder's averages remember their start: after this many periods its weight is below 5% (period 14).
RSI_SETTLE_PERIODS = 3


class RsiParams(StrategyParams):
    period: int = Field(14, ge=2, description="RSI period, in candles (Wilder's smoothing).")
    oversold: float = Field(30.0, gt=0, lt=100, description="Enter when the RSI crosses up through this level.")
    overbought: float = Field(70.0, gt=0, lt=100, description="Exit when the RSI crosses above this level.")

    @model_validator(mode="after")
    def _levels_in_order(self) -> Self:
        if self.oversold >= self.overbought:
            raise ValueError(
                f"oversold must be below overbought (got oversold={self.oversold:g}, overbought={self.overbought:g})"
            )
        return self


class RsiMeanReversion(Strategy[RsiParams]):
    """Enter when the RSI crosses up through `oversold`; exit when it crosses above `overbought`."""

    name = "rsi"
    description = "Mean reversion: enter when the RSI crosses up through oversold; exit above overbought."
    params_model = RsiParams

    @property
    def warmup(self) -> int:
        # The RSI exists from candle `period`; its first crossing can be one later; then let it settle.
        return RSI_SETTLE_PERIODS * self.params.period + 1

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {f"RSI {self.params.period}": indicators.rsi(candles.close, self.params.period)}

    def _signals(self, candles: Candles) -> tuple[BoolArray, BoolArray]:
        (strength,) = self.indicators(candles).values()
        entries = indicators.crossed_above(strength, self.params.oversold)
        exits = indicators.crossed_above(strength, self.params.overbought)
        return entries, exits

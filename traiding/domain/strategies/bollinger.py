"""Bollinger breakout: ride a close above the upper band until the price falls back below the middle."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from traiding.domain import indicators
from traiding.domain.candles import Candles
from traiding.domain.strategies.base import BoolArray, FloatArray, Strategy, StrategyParams


class BollingerParams(StrategyParams):
    period: int = Field(20, ge=2, description="Period of the middle band (SMA) and the deviation, in candles.")
    std: float = Field(2.0, gt=0, description="Band width in standard deviations.")


class BollingerBreakout(Strategy[BollingerParams]):
    """Enter when the close crosses above the upper band; exit on a close below the middle band."""

    name = "bollinger-breakout"
    description = "Enter when the close breaks above the upper band; exit when it falls below the middle band."
    params_model = BollingerParams

    @property
    def warmup(self) -> int:
        # The bands exist from candle period-1; a break-out compares with the candle before.
        return self.params.period

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        middle, upper, lower = indicators.bollinger(candles.close, self.params.period, self.params.std)
        return {"upper band": upper, "middle band": middle, "lower band": lower}

    def _signals(self, candles: Candles) -> tuple[BoolArray, BoolArray]:
        bands = self.indicators(candles)
        close = candles.close
        # A break-out is the first close above the band, not every close above it: after a stop-loss exit
        # the strategy waits for the next break-out instead of buying straight back in.
        entries = indicators.crossed_above(close, bands["upper band"])
        with np.errstate(invalid="ignore"):
            exits = close < bands["middle band"]
        return entries, exits

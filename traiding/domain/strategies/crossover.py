"""Moving-average crossovers: long while the fast average is above the slow one."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from traiding.domain import indicators
from traiding.domain.candles import Candles
from traiding.domain.strategies.base import BoolArray, FloatArray, Strategy, StrategyParams

# EMAs remember their seed: after this many slow periods its weight is below e^-4 (about 2%), so
# signals from a short live window match those from the full history.
EMA_SETTLE_PERIODS = 3


class SmaCrossoverParams(StrategyParams):
    fast: int = Field(20, ge=1, description="Period of the fast simple moving average, in candles.")
    slow: int = Field(50, ge=2, description="Period of the slow simple moving average, in candles.")

    @model_validator(mode="after")
    def _slow_above_fast(self) -> Self:
        if self.slow <= self.fast:
            raise ValueError(f"slow must be greater than fast (got fast={self.fast}, slow={self.slow})")
        return self


class EmaCrossoverParams(StrategyParams):
    fast: int = Field(12, ge=1, description="Period of the fast exponential moving average, in candles.")
    slow: int = Field(26, ge=2, description="Period of the slow exponential moving average, in candles.")

    @model_validator(mode="after")
    def _slow_above_fast(self) -> Self:
        if self.slow <= self.fast:
            raise ValueError(f"slow must be greater than fast (got fast={self.fast}, slow={self.slow})")
        return self


def _crossings(fast: FloatArray, slow: FloatArray) -> tuple[BoolArray, BoolArray]:
    # Entry: fast[i-1] <= slow[i-1] and fast[i] > slow[i]; exit: the mirror image.
    return indicators.crossed_above(fast, slow), indicators.crossed_below(fast, slow)


class SmaCrossover(Strategy[SmaCrossoverParams]):
    """Enter when the fast SMA crosses above the slow SMA on a close; exit when it crosses below."""

    name = "sma-crossover"
    description = "Enter when the fast SMA crosses above the slow SMA; exit when it crosses below."
    params_model = SmaCrossoverParams

    @property
    def warmup(self) -> int:
        # The slow SMA exists from candle slow-1; a crossing compares it with the candle before.
        return self.params.slow

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {
            f"SMA {self.params.fast}": indicators.sma(candles.close, self.params.fast),
            f"SMA {self.params.slow}": indicators.sma(candles.close, self.params.slow),
        }

    def _signals(self, candles: Candles) -> tuple[BoolArray, BoolArray]:
        fast, slow = self.indicators(candles).values()
        return _crossings(fast, slow)


class EmaCrossover(Strategy[EmaCrossoverParams]):
    """Enter when the fast EMA crosses above the slow EMA on a close; exit when it crosses below."""

    name = "ema-crossover"
    description = "Enter when the fast EMA crosses above the slow EMA; exit when it crosses below."
    params_model = EmaCrossoverParams

    @property
    def warmup(self) -> int:
        return EMA_SETTLE_PERIODS * self.params.slow

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {
            f"EMA {self.params.fast}": indicators.ema(candles.close, self.params.fast),
            f"EMA {self.params.slow}": indicators.ema(candles.close, self.params.slow),
        }

    def _signals(self, candles: Candles) -> tuple[BoolArray, BoolArray]:
        fast, slow = self.indicators(candles).values()
        return _crossings(fast, slow)

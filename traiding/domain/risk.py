"""Risk limits of a trading session: position size, stop loss, daily loss limit, drawdown kill switch.

Pure bookkeeping over equity numbers, so the trading session (dry or live) and its tests share it.
The state is a small frozen value that goes into the run's checkpoint, which is how the limits
survive an operator restart (a daily loss limit that resets on restart would be no limit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

DAY_MS = 86_400_000


@dataclass(frozen=True)
class RiskLimits:
    max_position_fraction: float
    stop_loss_pct: float | None
    daily_loss_limit_pct: float
    max_drawdown_pct: float


@dataclass(frozen=True)
class RiskState:
    peak_equity: float
    day: int  # UTC day number (epoch ms // DAY_MS) the day's start equity belongs to
    day_start_equity: float
    killed: bool = False
    kill_reason: str = ""

    @classmethod
    def start(cls, equity: float, now_ms: int) -> RiskState:
        return cls(peak_equity=equity, day=now_ms // DAY_MS, day_start_equity=equity)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RiskState:
        return cls(**data)


def drawdown_pct(peak: float, equity: float) -> float:
    return 0.0 if peak <= 0 else max(0.0, (peak - equity) / peak * 100)


def observe_equity(limits: RiskLimits, state: RiskState, equity: float, now_ms: int) -> RiskState:
    """Roll the day, track the peak and trip the kill switch once the drawdown reaches the limit."""
    day = now_ms // DAY_MS
    if day != state.day:
        state = replace(state, day=day, day_start_equity=equity)
    state = replace(state, peak_equity=max(state.peak_equity, equity))
    drawdown = drawdown_pct(state.peak_equity, equity)
    if not state.killed and drawdown >= limits.max_drawdown_pct:
        state = replace(
            state,
            killed=True,
            kill_reason=(
                f"kill switch: drawdown {drawdown:.2f}% from the peak {state.peak_equity:.2f} reached the limit "
                f"{limits.max_drawdown_pct:.2f}%"
            ),
        )
    return state


def entry_block_reason(limits: RiskLimits, state: RiskState, equity: float) -> str | None:
    """Why no new position may be opened now, or None when one may."""
    if state.killed:
        return state.kill_reason
    day_loss = drawdown_pct(state.day_start_equity, equity)
    if day_loss >= limits.daily_loss_limit_pct:
        return (
            f"daily loss limit: down {day_loss:.2f}% today, limit {limits.daily_loss_limit_pct:.2f}%; "
            "no new positions until the next UTC day"
        )
    return None


def position_budget(limits: RiskLimits, equity: float, free_quote: float) -> float:
    """Quote currency one new position may use: the fraction of equity, never more than is free."""
    return max(0.0, min(equity * limits.max_position_fraction, free_quote))


def stop_price(limits: RiskLimits, entry_price: float) -> float | None:
    if limits.stop_loss_pct is None:
        return None
    return entry_price * (1 - limits.stop_loss_pct / 100)

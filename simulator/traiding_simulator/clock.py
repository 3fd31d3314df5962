"""Two clocks: the exchange's wall clock (what /api/v3/time says, what recvWindow is checked against)
and the replay clock (the market "now": which candles exist, what the price is)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class ExchangeClock:
    """The exchange's own clock: real time plus a configurable offset (to simulate a skewed exchange)."""

    def __init__(self, offset_ms: int = 0, wall: Callable[[], int] = wall_ms) -> None:
        self.offset_ms = offset_ms
        self._wall = wall

    def now_ms(self) -> int:
        return self._wall() + self.offset_ms


class ReplayClock:
    """Market time that runs `speed` times faster than real time from an anchor.

    Changing the speed re-anchors at the current replay time, so the replay never jumps when sped up.
    """

    def __init__(self, start_ms: int, speed: float = 1.0, wall: Callable[[], int] = wall_ms) -> None:
        self._wall = wall
        self.start_ms = start_ms
        self._anchor_replay = start_ms
        self._anchor_wall = wall()
        self.speed = speed

    def now_ms(self) -> int:
        return self._anchor_replay + int((self._wall() - self._anchor_wall) * self.speed)

    def set_speed(self, speed: float) -> None:
        self._anchor_replay = self.now_ms()
        self._anchor_wall = self._wall()
        self.speed = speed

    def jump(self, replay_ms: int) -> None:
        self._anchor_replay = replay_ms
        self._anchor_wall = self._wall()

    def reset(self) -> None:
        self.jump(self.start_ms)

"""Injected faults: random latency, 5xx answers, hangs and maintenance, plus targeted one-shot rules
(e.g. "accept the next order, then hang") that prove a client never places an order twice."""

from __future__ import annotations

import random
from dataclasses import dataclass

from traiding_simulator.config import FaultConfig, FaultRule


@dataclass
class RandomFault:
    latency_s: float = 0.0
    error_status: int | None = None
    hang_s: float | None = None


class Faults:
    def __init__(self, config: FaultConfig, default_seed: int) -> None:
        self._default_seed = default_seed
        self.rules: list[FaultRule] = []
        self.injected: dict[str, int] = {}
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed if config.seed is not None else self._default_seed)  # nosec B311  # no secret

    def add_rule(self, rule: FaultRule) -> None:
        self.rules.append(rule.model_copy())

    def clear(self) -> None:
        self.rules.clear()
        self.configure(FaultConfig())

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def _applies(self, path: str) -> bool:
        return self.config.paths is None or any(path.startswith(p) for p in self.config.paths)

    def roll(self, path: str) -> RandomFault:
        """The random faults for one request; dice are rolled in a fixed order so a seed replays exactly."""
        cfg = self.config
        fault = RandomFault()
        if not self._applies(path):
            return fault
        latency = cfg.latency_ms + (self._rng.uniform(0, cfg.latency_jitter_ms) if cfg.latency_jitter_ms else 0.0)
        fault.latency_s = latency / 1000.0
        if cfg.error_rate and self._rng.random() < cfg.error_rate:
            fault.error_status = cfg.error_status
            self._count("error")
        elif cfg.timeout_rate and self._rng.random() < cfg.timeout_rate:
            fault.hang_s = cfg.hang_ms / 1000.0
            self._count("timeout")
        return fault

    def take_rule(self, method: str, path: str) -> FaultRule | None:
        """The first targeted rule for this request, consuming one of its uses."""
        for index, rule in enumerate(self.rules):
            if rule.method.upper() == method.upper() and rule.path == path:
                remaining = rule.count - 1
                if remaining <= 0:
                    del self.rules[index]
                else:
                    self.rules[index] = rule.model_copy(update={"count": remaining})
                self._count(rule.action)
                return rule
        return None

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from traiding.domain.candles import Candles, load_candles
from traiding.domain.strategies import (
    Signals,
    StrategyParamError,
    UnknownStrategyError,
    available_strategies,
    get_strategy,
    strategy_help,
)
from traiding.errors import UserError

NAMES = ["bollinger-breakout", "ema-crossover", "rsi", "sma-crossover"]


def candles_from_closes(closes: list[float]) -> Candles:
    close = np.asarray(closes, dtype=np.float64)
    time = 1_606_780_800_000 + 300_000 * np.arange(close.shape[0], dtype=np.int64)
    return Candles(time, close, close * 1.001, close * 0.999, close, np.ones_like(close))


def random_walk(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    walk: list[float] = (20_000 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))).tolist()
    return walk


# ---------------------------------------------------------------- plain-Python references


def ref_sma(x: list[float], p: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(x):
        total += v
        if i >= p:
            total -= x[i - p]
        out.append(total / p if i >= p - 1 else math.nan)
    return out


def ref_ema(x: list[float], p: int) -> list[float]:
    out = [math.nan] * len(x)
    alpha, value = 2 / (p + 1), sum(x[:p]) / p
    out[p - 1] = value
    for i in range(p, len(x)):
        value = alpha * x[i] + (1 - alpha) * value
        out[i] = value
    return out


def ref_rsi(x: list[float], p: int) -> list[float]:
    out = [math.nan] * len(x)
    changes = [x[i] - x[i - 1] for i in range(1, len(x))]
    gain = sum(max(c, 0) for c in changes[:p]) / p
    loss = sum(max(-c, 0) for c in changes[:p]) / p
    for i in range(p, len(x)):
        if i > p:
            c = changes[i - 1]
            gain = (gain * (p - 1) + max(c, 0)) / p
            loss = (loss * (p - 1) + max(-c, 0)) / p
        out[i] = 50.0 if gain + loss == 0 else 100 * gain / (gain + loss)
    return out


def ref_bands(x: list[float], p: int, k: float) -> tuple[list[float], list[float]]:
    middle, upper = [], []
    for i in range(len(x)):
        if i < p - 1:
            middle.append(math.nan)
            upper.append(math.nan)
            continue
        window = x[i - p + 1 : i + 1]
        mean = sum(window) / p
        std = math.sqrt(sum((v - mean) ** 2 for v in window) / p)
        middle.append(mean)
        upper.append(mean + k * std)
    return middle, upper


def cross_above(a: list[float], b: list[float], i: int) -> bool:
    return a[i - 1] <= b[i - 1] and a[i] > b[i]


def cross_below(a: list[float], b: list[float], i: int) -> bool:
    return a[i - 1] >= b[i - 1] and a[i] < b[i]


def assert_signals(signals: Signals, entries: list[bool], exits: list[bool]) -> None:
    assert signals.entries.dtype == np.bool_ and signals.exits.dtype == np.bool_
    assert np.flatnonzero(signals.entries).tolist() == [i for i, e in enumerate(entries) if e]
    assert np.flatnonzero(signals.exits).tolist() == [i for i, e in enumerate(exits) if e]


# ---------------------------------------------------------------- registry and parameters


def test_available_strategies() -> None:
    assert available_strategies() == NAMES
    for name in NAMES:
        assert name in strategy_help()


def test_unknown_strategy_lists_valid_names() -> None:
    with pytest.raises(UnknownStrategyError) as caught:
        get_strategy("sma-cross", {})
    assert isinstance(caught.value, UserError)
    assert str(caught.value) == (
        "unknown strategy 'sma-cross'; available strategies: bollinger-breakout, ema-crossover, rsi, sma-crossover"
    )


def test_names_are_forgiving_about_case_and_underscores() -> None:
    assert get_strategy("SMA_Crossover").name == "sma-crossover"


@pytest.mark.parametrize(
    ("name", "defaults", "warmup"),
    [
        ("sma-crossover", {"fast": 20, "slow": 50}, 50),
        ("ema-crossover", {"fast": 12, "slow": 26}, 3 * 26),
        ("rsi", {"period": 14, "oversold": 30.0, "overbought": 70.0}, 3 * 14 + 1),
        ("bollinger-breakout", {"period": 20, "std": 2.0}, 20),
    ],
)
def test_defaults_and_warmup(name: str, defaults: dict[str, Any], warmup: int) -> None:
    strategy = get_strategy(name)
    assert strategy.params.model_dump() == defaults
    assert strategy.warmup == warmup
    assert get_strategy(name, None).params == strategy.params


def test_params_accept_text_and_whole_floats() -> None:
    strategy = get_strategy("sma-crossover", {"fast": "10", "slow": " 30.0 "})
    assert strategy.params.model_dump() == {"fast": 10, "slow": 30}
    assert isinstance(strategy.params.model_dump()["fast"], int)
    assert get_strategy("sma-crossover", {"fast": 10.0, "slow": 30.0}).params == strategy.params
    assert get_strategy("rsi", {"oversold": "25.5"}).params.model_dump()["oversold"] == 25.5
    assert repr(strategy) == "SmaCrossover(fast=10, slow=30)"


def test_params_are_frozen() -> None:
    strategy = get_strategy("sma-crossover")
    with pytest.raises(ValueError, match="frozen"):
        strategy.params.fast = 3


VALID_SMA = "valid parameters: fast (int, default 20), slow (int, default 50)"


@pytest.mark.parametrize(
    ("name", "params", "parameter", "message"),
    [
        ("sma-crossover", {"fast": 50, "slow": 20}, "slow", "slow must be greater than fast (got fast=50, slow=20)"),
        ("sma-crossover", {"fast": 20, "slow": 20}, "slow", "slow must be greater than fast"),
        ("sma-crossover", {"fsat": 5}, "fsat", "unknown parameter"),
        ("sma-crossover", {"fast": "abc"}, "fast", "valid integer, unable to parse string as an integer (got 'abc')"),
        ("sma-crossover", {"fast": 20.5}, "fast", "got a number with a fractional part (got 20.5)"),
        ("sma-crossover", {"fast": 0}, "fast", "greater than or equal to 1 (got 0)"),
        ("ema-crossover", {"slow": 1}, "slow", "greater than or equal to 2"),
        ("rsi", {"oversold": 80}, "oversold", "oversold must be below overbought (got oversold=80, overbought=70)"),
        ("rsi", {"overbought": 100}, "overbought", "less than 100"),
        ("rsi", {"period": 1}, "period", "greater than or equal to 2"),
        ("bollinger-breakout", {"std": -1}, "std", "greater than 0 (got -1)"),
    ],
)
def test_bad_params_name_the_parameter_and_list_the_valid_ones(
    name: str, params: dict[str, Any], parameter: str, message: str
) -> None:
    with pytest.raises(StrategyParamError) as caught:
        get_strategy(name, params)
    error = caught.value
    assert isinstance(error, UserError)
    assert error.strategy == name
    assert error.parameter == parameter
    text = str(error)
    assert text.startswith(f"strategy {name}: parameter {parameter!r}: ")
    assert message in text
    assert "valid parameters: " in text
    if name == "sma-crossover":
        assert text.endswith(VALID_SMA)


def test_signals_validate_their_shape() -> None:
    with pytest.raises(ValueError, match="equal 1-d shapes"):
        Signals(np.zeros(3, dtype=np.bool_), np.zeros(4, dtype=np.bool_))
    with pytest.raises(ValueError, match="boolean"):
        Signals(np.zeros(3), np.zeros(3))  # type: ignore[arg-type]
    assert len(Signals(np.zeros(3, dtype=np.bool_), np.zeros(3, dtype=np.bool_))) == 3


# ---------------------------------------------------------------- signals against references


def test_sma_crossover_on_a_hand_made_series() -> None:
    # fast=1 (the close itself), slow=3. The close rises through its 3-candle average at index 4
    # and falls through it at index 7.
    closes = [10.0, 10.0, 10.0, 10.0, 13.0, 14.0, 14.0, 9.0, 8.0]
    signals = get_strategy("sma-crossover", {"fast": 1, "slow": 3}).signals(candles_from_closes(closes))
    assert np.flatnonzero(signals.entries).tolist() == [4]
    assert np.flatnonzero(signals.exits).tolist() == [7]


def test_touching_is_not_crossing() -> None:
    # At index 3 the close equals its average (10 == 10): entry needs the previous candle at or below
    # and this one strictly above, so the entry comes at index 4, not 3.
    closes = [10.0, 10.0, 10.0, 10.0, 11.0, 12.0]
    signals = get_strategy("sma-crossover", {"fast": 1, "slow": 3}).signals(candles_from_closes(closes))
    assert np.flatnonzero(signals.entries).tolist() == [4]


@pytest.mark.parametrize(("fast", "slow", "seed"), [(1, 2, 1), (5, 20, 2), (20, 50, 3), (10, 200, 4)])
def test_sma_crossover_matches_reference(fast: int, slow: int, seed: int) -> None:
    x = random_walk(4000, seed)
    f, s = ref_sma(x, fast), ref_sma(x, slow)
    entries = [i >= slow and cross_above(f, s, i) for i in range(len(x))]
    exits = [i >= slow and cross_below(f, s, i) for i in range(len(x))]
    strategy = get_strategy("sma-crossover", {"fast": fast, "slow": slow})
    assert_signals(strategy.signals(candles_from_closes(x)), entries, exits)
    assert sum(entries) > 5  # the data really crosses


@pytest.mark.parametrize(("fast", "slow", "seed"), [(3, 7, 5), (12, 26, 6)])
def test_ema_crossover_matches_reference(fast: int, slow: int, seed: int) -> None:
    x = random_walk(4000, seed)
    f, s = ref_ema(x, fast), ref_ema(x, slow)
    warmup = 3 * slow
    entries = [i >= warmup and cross_above(f, s, i) for i in range(len(x))]
    exits = [i >= warmup and cross_below(f, s, i) for i in range(len(x))]
    strategy = get_strategy("ema-crossover", {"fast": fast, "slow": slow})
    assert_signals(strategy.signals(candles_from_closes(x)), entries, exits)
    assert sum(entries) > 5


@pytest.mark.parametrize(("period", "oversold", "overbought", "seed"), [(14, 30, 70, 7), (6, 20, 80, 8)])
def test_rsi_matches_reference(period: int, oversold: float, overbought: float, seed: int) -> None:
    x = random_walk(4000, seed)
    r = ref_rsi(x, period)
    low, high = [float(oversold)] * len(x), [float(overbought)] * len(x)
    warmup = 3 * period + 1
    entries = [i >= warmup and cross_above(r, low, i) for i in range(len(x))]
    exits = [i >= warmup and cross_above(r, high, i) for i in range(len(x))]
    params = {"period": period, "oversold": oversold, "overbought": overbought}
    assert_signals(get_strategy("rsi", params).signals(candles_from_closes(x)), entries, exits)
    assert sum(entries) > 5 and sum(exits) > 5


@pytest.mark.parametrize(("period", "width", "seed"), [(20, 2.0, 9), (10, 1.5, 10)])
def test_bollinger_breakout_matches_reference(period: int, width: float, seed: int) -> None:
    x = random_walk(4000, seed)
    middle, upper = ref_bands(x, period, width)
    entries = [i >= period and cross_above(x, upper, i) for i in range(len(x))]
    exits = [i >= period and x[i] < middle[i] for i in range(len(x))]
    strategy = get_strategy("bollinger-breakout", {"period": period, "std": width})
    assert_signals(strategy.signals(candles_from_closes(x)), entries, exits)
    assert sum(entries) > 5


@pytest.mark.parametrize("name", NAMES)
def test_no_signal_during_warmup_and_lengths_match(name: str) -> None:
    strategy = get_strategy(name)
    for n in (0, 1, strategy.warmup, strategy.warmup + 500):
        signals = strategy.signals(candles_from_closes(random_walk(n, 12)))
        assert len(signals) == n
        assert not signals.entries[: strategy.warmup].any()
        assert not signals.exits[: strategy.warmup].any()


@pytest.mark.parametrize("name", NAMES)
def test_indicator_lines_for_charts(name: str) -> None:
    strategy = get_strategy(name)
    candles = candles_from_closes(random_walk(300, 13))
    lines = strategy.indicators(candles)
    assert lines
    for values in lines.values():
        assert values.shape == (300,)
        assert np.isfinite(values[strategy.warmup :]).all()


@pytest.mark.parametrize(("name", "params"), [("sma-crossover", {"fast": 5, "slow": 30}), ("bollinger-breakout", {})])
def test_signals_on_a_recent_window_match_the_full_history(name: str, params: dict[str, Any]) -> None:
    # What the trading session relies on: signals from the last few candles equal the backtest's.
    strategy = get_strategy(name, params)
    candles = candles_from_closes(random_walk(3000, 14))
    full = strategy.signals(candles)
    start = 3000 - 4 * strategy.warmup
    window = strategy.signals(candles.slice(start, 3000))
    assert np.array_equal(window.entries[strategy.warmup :], full.entries[start + strategy.warmup :])
    assert np.array_equal(window.exits[strategy.warmup :], full.exits[start + strategy.warmup :])


def test_sma_crossover_on_real_candles_matches_reference(shared_data: Path) -> None:
    candles = load_candles(shared_data / "BTC_USDT-5m.json")
    x = candles.close.tolist()
    f, s = ref_sma(x, 20), ref_sma(x, 50)
    entries = [i >= 50 and cross_above(f, s, i) for i in range(len(x))]
    exits = [i >= 50 and cross_below(f, s, i) for i in range(len(x))]
    assert_signals(get_strategy("sma-crossover", {"fast": 20, "slow": 50}).signals(candles), entries, exits)

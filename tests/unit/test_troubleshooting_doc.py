"""docs/troubleshooting.md quotes what a user actually sees: each quoted message is the code's own, built here
from the code with the doc's values, so a reworded message fails this test until the doc follows."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from traiding.domain.gates import GateThreshold, evaluate_gates
from traiding.domain.statemachine import Phase, timeout_message
from traiding_adapters.errors import clock_skew_message

DOC = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"
ADAPTERS = Path(__file__).resolve().parents[2] / "adapters" / "traiding_adapters"
OPERATOR = Path(__file__).resolve().parents[2] / "operator" / "traiding_operator"


def doc_text() -> str:
    """The document with its line breaks and markdown quoting folded away."""
    return " ".join(DOC.read_text().replace("`", "").split())


def source_template(path: Path, start: str) -> str:
    """A message as the source writes it (an f-string over one or more literals), joined."""
    text = path.read_text()
    at = text.index(start)
    literals = re.findall(r'f?"((?:[^"\\]|\\.)*)"', text[at : text.index(")", at + len(start))])
    return "".join(literals)


def test_the_clock_skew_message_is_quoted() -> None:
    assert f"ClockSkew: {clock_skew_message(1800, 'binance', 1000)}" in doc_text()


def test_the_phase_deadline_message_is_quoted() -> None:
    assert f"PhaseTimeout: {timeout_message(Phase.BACKTEST, timedelta(minutes=15))}" in doc_text()


def test_the_failed_gate_message_is_quoted() -> None:
    gate = GateThreshold(name="minSharpe", metric="sharpe", comparison=">=", threshold=0.5)
    message = evaluate_gates({"sharpe": -2.31}, [gate]).summary()
    assert f"BacktestGateFailed: BTC/USDT: {message}" in doc_text()


@pytest.mark.parametrize(
    ("path", "start", "values"),
    [
        (ADAPTERS / "connection.py", 'log.warning("%s answered', ("binance", "120.0")),
        (ADAPTERS / "ratelimit.py", "raise RateLimited(", ("120",)),
        (
            OPERATOR / "credentials.py",
            'f"{what}: the operator may not read',
            ("the run's credentials", "binance-keys", "trading"),
        ),
    ],
)
def test_log_lines_and_messages_are_quoted(path: Path, start: str, values: tuple[str, ...]) -> None:
    template = source_template(path, start.split("(", maxsplit=1)[0] if start.startswith("raise") else start)
    filled = re.sub(r"%\.?\d*[sdf]|\{[^}]*\}", "\0", template)
    for value in values:
        filled = filled.replace("\0", value, 1)
    assert "\0" not in filled, template
    assert " ".join(filled.split()) in doc_text()

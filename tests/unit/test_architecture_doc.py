"""docs/architecture.md's lifecycle diagram is the state machine's: every forward transition drawn, none that
the state machine refuses, every final phase an end."""

from __future__ import annotations

import re
from pathlib import Path

from traiding.domain.statemachine import ALLOWED, TERMINAL, Phase

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
EDGE = re.compile(r"^\s*(\[\*\]|\w+)\s*-->\s*(\[\*\]|\w+)", re.MULTILINE)


def diagram_edges() -> set[tuple[str, str]]:
    block = re.search(r"```mermaid\nstateDiagram-v2\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert block, "docs/architecture.md has no stateDiagram-v2 block"
    return set(EDGE.findall(block.group(1)))


def test_every_drawn_transition_is_allowed_and_every_forward_one_is_drawn() -> None:
    edges = diagram_edges()
    between_phases = {(a, b) for a, b in edges if "[*]" not in (a, b)}
    refused = [f"{a} -> {b}" for a, b in between_phases if Phase(b) not in ALLOWED[Phase(a)]]
    assert refused == []
    forward = {(a.value, b.value) for a, targets in ALLOWED.items() for b in targets if b not in TERMINAL}
    forward |= {(Phase.REPORTING.value, Phase.SUCCEEDED.value)}
    drawn_forward = {(a, b) for a, b in between_phases if Phase(b) not in (Phase.FAILED, Phase.CANCELLED)}
    assert drawn_forward == forward


def test_the_diagram_starts_at_pending_and_ends_at_every_final_phase() -> None:
    edges = diagram_edges()
    assert ("[*]", Phase.PENDING.value) in edges
    assert {b for a, b in edges if b == "[*]"} and {a for a, b in edges if b == "[*]"} == {p.value for p in TERMINAL}
    for phase in (Phase.FAILED, Phase.CANCELLED):
        assert any(b == phase.value for _, b in edges), f"no way to {phase} drawn"

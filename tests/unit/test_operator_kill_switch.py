"""What a kill switch ConfigMap says (reading it from the API server: tests/integration/test_security.py)."""

from __future__ import annotations

import pytest

from traiding.pipeline.halt import HaltOrder
from traiding_operator.kill_switch import combined, halt_order_of


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, None),
        ({}, None),
        ({"halt": "false"}, None),
        ({"halt": "true"}, HaltOrder("here")),
        (
            {"halt": " Yes ", "flatten": "true", "reason": "  exchange\nincident "},
            HaltOrder("here", True, "exchange incident"),
        ),
        ({"halt": "1", "flatten": "no"}, HaltOrder("here", False)),
    ],
)
def test_a_configmap_sets_the_switch_only_with_halt_true(
    data: dict[str, str] | None, expected: HaltOrder | None
) -> None:
    assert halt_order_of(data, "here") == expected


def test_a_long_reason_is_cut() -> None:
    order = halt_order_of({"halt": "true", "reason": "x" * 5000}, "here")
    assert order is not None and len(order.reason) == 200


def test_two_switches_halt_together_and_either_can_flatten() -> None:
    assert combined([]) is None
    both = combined([HaltOrder("ns", False, "a"), HaltOrder("cluster", True, "b")])
    assert both == HaltOrder("ns and cluster", True, "a; b")

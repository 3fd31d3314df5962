"""Deterministic client order ids within Binance's limits."""

from __future__ import annotations

import pytest

from traiding_adapters.client_ids import CLIENT_ORDER_ID_RE, client_order_id, is_valid_client_order_id


def test_same_run_and_sequence_give_the_same_id() -> None:
    uid = "6f1c2a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"
    assert client_order_id(uid, 7) == client_order_id(uid, 7)


def test_ids_differ_across_sequences_and_runs() -> None:
    ids = {client_order_id(f"run-{r}", s) for r in range(50) for s in range(200)}
    assert len(ids) == 50 * 200


@pytest.mark.parametrize("sequence", [0, 1, 35, 36, 10**6, 36**13 - 1])
def test_ids_fit_binance(sequence: int) -> None:
    value = client_order_id("a" * 300, sequence)
    assert len(value) <= 36
    assert CLIENT_ORDER_ID_RE.fullmatch(value)
    assert is_valid_client_order_id(value)


@pytest.mark.parametrize("sequence", [-1, 36**13])
def test_sequence_out_of_range(sequence: int) -> None:
    with pytest.raises(ValueError, match="sequence"):
        client_order_id("run", sequence)


def test_empty_run_uid_rejected() -> None:
    with pytest.raises(ValueError, match="run_uid"):
        client_order_id("", 0)


@pytest.mark.parametrize("value", ["", "a" * 37, "has space", "x/y", "ü"])
def test_invalid_ids(value: str) -> None:
    assert not is_valid_client_order_id(value)

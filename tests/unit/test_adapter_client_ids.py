"""Deterministic client order ids, derived from the intent, within Binance's limits."""

from __future__ import annotations

import pytest

from traiding_adapters.client_ids import CLIENT_ORDER_ID_RE, client_order_id, is_valid_client_order_id


def test_the_same_intent_of_the_same_run_gives_the_same_id() -> None:
    uid = "6f1c2a8e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"
    key = "ETH/USDT|buy|market|1700000000000|entry|0"
    assert client_order_id(uid, key) == client_order_id(uid, key)


def test_ids_differ_across_intents_and_runs() -> None:
    ids = {client_order_id(f"run-{r}", f"BTC/USDT|buy|market|{t}|entry|0") for r in range(50) for t in range(200)}
    assert len(ids) == 50 * 200
    assert client_order_id("r", "ETH/USDT|buy|market|1|entry|0") != client_order_id(
        "r", "BTC/USDT|buy|market|1|entry|0"
    )


@pytest.mark.parametrize("key", ["x", "SOL/USDT|sell|stop_loss_limit|1700000000000|protective_stop|12", "k" * 500])
def test_ids_fit_binance(key: str) -> None:
    value = client_order_id("a" * 300, key)
    assert len(value) <= 36
    assert CLIENT_ORDER_ID_RE.fullmatch(value)
    assert is_valid_client_order_id(value)


def test_empty_run_uid_or_key_rejected() -> None:
    with pytest.raises(ValueError, match="run_uid"):
        client_order_id("", "k")
    with pytest.raises(ValueError, match="intent_key"):
        client_order_id("run", "")


@pytest.mark.parametrize("value", ["", "a" * 37, "has space", "x/y", "ü"])
def test_invalid_ids(value: str) -> None:
    assert not is_valid_client_order_id(value)

"""ApiCheck decisions on exchange answers the simulator cannot give (other exchanges, unknown permissions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from traiding.domain.candles import CandleCache
from traiding.domain.statemachine import OutcomeKind
from traiding.pipeline.api_check import run_api_check
from traiding.pipeline.context import RunContext
from traiding.pipeline.events import EventLog, MemorySink
from traiding.pipeline.history import HistoryStore
from traiding.resource import TradingRunSpec
from traiding_adapters.exchange import Balance, Health, KeyPermissions, Market


class AnsweringExchange:
    exchange_id = "kraken"
    circuit_state = "closed"

    def __init__(
        self,
        *,
        health: Health | None = None,
        markets: dict[str, Market] | None = None,
        permissions: KeyPermissions | None = None,
    ) -> None:
        self._health = health or Health(
            exchange_id="kraken",
            reachable=True,
            maintenance=False,
            status="ok",
            clock_offset_ms=12,
            latency_ms=30.0,
            circuit="closed",
        )
        self._markets = (
            markets
            if markets is not None
            else {"ETH/USDT": Market(symbol="ETH/USDT", base="ETH", quote="USDT", min_notional=5.0)}
        )
        self._permissions = permissions or KeyPermissions(
            can_read=True, can_trade=None, can_withdraw=None, source="not reported by kraken"
        )

    async def health(self) -> Health:
        return self._health

    async def load_markets(self) -> dict[str, Market]:
        return self._markets

    async def key_permissions(self) -> KeyPermissions:
        return self._permissions

    async def fetch_balances(self) -> dict[str, Balance]:
        return {"USDT": Balance(currency="USDT", free=50_000, used=0, total=50_000)}


def context(
    tmp_path: Path, exchange: AnsweringExchange, *, live: bool, credentials: bool = True, **gate: Any
) -> RunContext:
    spec = TradingRunSpec.model_validate(
        {
            "mode": "live" if live else "dry-run",
            "exchange": {"id": "kraken", "credentialsSecretRef": {"name": "keys"}} if credentials else {"id": "kraken"},
            "market": {"symbols": ["ETH/USDT"]},
            "strategy": {"name": "sma-crossover"},
            "gates": {"apiCheck": gate},
        }
    )
    return RunContext(
        run_name="r",
        run_uid="uid",
        spec=spec,
        exchange=exchange,  # type: ignore[arg-type]  # answers only what ApiCheck asks
        orders=exchange,  # type: ignore[arg-type]
        events=EventLog("r", [MemorySink()]),
        history=HistoryStore(CandleCache(tmp_path)),
        has_credentials=credentials,
    )


async def test_a_live_key_whose_withdrawal_permission_is_unknown_is_refused(tmp_path: Path) -> None:
    result = await run_api_check(context(tmp_path, AnsweringExchange(), live=True), {})
    assert (result.outcome.kind, result.outcome.reason) == (OutcomeKind.FAILED, "KeyPermissionsUnknown")
    assert "refuseWithdrawalKeys: false" in result.outcome.message


async def test_the_user_may_accept_an_unverifiable_key_explicitly(tmp_path: Path) -> None:
    ctx = context(tmp_path, AnsweringExchange(), live=True, refuseWithdrawalKeys=False)
    result = await run_api_check(ctx, {})
    assert result.outcome.kind is OutcomeKind.PASSED
    assert result.results["permissions"]["canWithdraw"] is None


async def test_a_dry_run_only_reads_so_unknown_permissions_pass(tmp_path: Path) -> None:
    result = await run_api_check(context(tmp_path, AnsweringExchange(), live=False), {})
    assert result.outcome.kind is OutcomeKind.PASSED


async def test_maintenance_is_transient_and_says_so(tmp_path: Path) -> None:
    down = Health(
        exchange_id="kraken",
        reachable=True,
        maintenance=True,
        status="maintenance",
        clock_offset_ms=None,
        latency_ms=None,
        circuit="closed",
    )
    result = await run_api_check(context(tmp_path, AnsweringExchange(health=down), live=False), {})
    assert result.outcome.kind is OutcomeKind.TRANSIENT
    assert result.outcome.message == "kraken is in maintenance"


@pytest.mark.parametrize(
    ("markets", "words"),
    [
        ({}, "ETH/USDT is not listed on kraken"),
        (
            {"ETH/USDT": Market(symbol="ETH/USDT", base="ETH", quote="USDT", active=False)},
            "ETH/USDT is not trading on kraken right now",
        ),
    ],
)
async def test_symbols_must_be_listed_and_trading(tmp_path: Path, markets: dict[str, Market], words: str) -> None:
    result = await run_api_check(context(tmp_path, AnsweringExchange(markets=markets), live=False), {})
    assert (result.outcome.kind, result.outcome.reason, result.outcome.message) == (
        OutcomeKind.FAILED,
        "MarketUnavailable",
        words,
    )


async def test_credentials_that_could_not_be_read_fail_the_check_with_the_reason(tmp_path: Path) -> None:
    ctx = context(tmp_path, AnsweringExchange(), live=True)
    ctx.has_credentials = False  # the run names a Secret, which could not be read
    ctx.credentials_problem = "Secret keys in namespace ns: key 'apiKey' cannot be decrypted with the operator's keys"
    result = await run_api_check(ctx, {})
    assert (result.outcome.kind, result.outcome.reason) == (OutcomeKind.FAILED, "CredentialsUnavailable")
    assert result.outcome.message == ctx.credentials_problem
    assert result.results["credentials"] == "unavailable"  # never "none": a run that names keys cannot pass without

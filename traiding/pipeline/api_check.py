"""The ApiCheck phase: the exchange is up, clocks agree, markets are tradable, and the key is fit to trade."""

from __future__ import annotations

from typing import Any

from traiding.domain.statemachine import Outcome, OutcomeKind, Phase
from traiding.pipeline.context import PhaseResult, RunContext, failed, passed
from traiding_adapters.errors import clock_skew_message


async def run_api_check(ctx: RunContext, checkpoint: dict[str, Any]) -> PhaseResult:
    gate = ctx.spec.gates.apiCheck
    exchange_id = ctx.spec.exchange.id
    health = await ctx.exchange.health()
    results: dict[str, Any] = {
        "reachable": health.reachable,
        "status": health.status,
        "latencyMs": health.latency_ms,
        "clockOffsetMs": health.clock_offset_ms,
    }
    if not health.reachable or health.maintenance:
        why = "in maintenance" if health.maintenance else f"unreachable ({health.last_error or health.status})"
        return PhaseResult(
            Outcome(Phase.API_CHECK, OutcomeKind.TRANSIENT, "ExchangeUnavailable", f"{exchange_id} is {why}"), results
        )
    if health.clock_offset_ms is not None and abs(health.clock_offset_ms) > gate.maxClockSkewMs:
        return failed(
            Phase.API_CHECK,
            "ClockSkew",
            clock_skew_message(health.clock_offset_ms, exchange_id, gate.maxClockSkewMs),
            results,
        )

    markets = await ctx.exchange.load_markets()
    problems: list[str] = []
    for symbol in ctx.spec.market.symbols:
        market = markets.get(symbol)
        if market is None:
            problems.append(f"{symbol} is not listed on {exchange_id}")
        elif not market.active:
            problems.append(f"{symbol} is not trading on {exchange_id} right now")
        else:
            results.setdefault("markets", {})[symbol] = {
                "minNotional": market.min_notional,
                "minQty": market.min_qty,
                "stepSize": market.step_size,
                "tickSize": market.tick_size,
            }
    if problems:
        return failed(Phase.API_CHECK, "MarketUnavailable", "; ".join(problems), results)

    if ctx.credentials_problem is not None:
        results["credentials"] = "unavailable"
        return failed(Phase.API_CHECK, "CredentialsUnavailable", ctx.credentials_problem, results)
    if not ctx.has_credentials:
        results["credentials"] = "none (dry run on public market data)"
        message = f"{exchange_id} reachable, clock within {gate.maxClockSkewMs} ms, markets loaded; no API key"
        return passed(Phase.API_CHECK, "ApiReady", message, results)

    permissions = await ctx.exchange.key_permissions()
    results["permissions"] = {
        "canRead": permissions.can_read,
        "canTrade": permissions.can_trade,
        "canWithdraw": permissions.can_withdraw,
        "source": permissions.source,
    }
    if gate.refuseWithdrawalKeys and permissions.can_withdraw:
        return failed(
            Phase.API_CHECK,
            "KeyCanWithdraw",
            "the API key may withdraw funds: create a key without withdrawal permission for trading",
            results,
        )
    if ctx.live and gate.refuseWithdrawalKeys and permissions.can_withdraw is None:
        # Safety first: an unverifiable key is treated like one that can withdraw, unless the user says otherwise.
        return failed(
            Phase.API_CHECK,
            "KeyPermissionsUnknown",
            f"{exchange_id} does not tell whether the API key may withdraw ({permissions.source}); make sure it "
            "cannot, then set gates.apiCheck.refuseWithdrawalKeys: false to accept the key",
            results,
        )
    if ctx.live and permissions.can_trade is False:
        return failed(
            Phase.API_CHECK, "KeyCannotTrade", "the API key has no spot trading permission: enable it", results
        )
    if ctx.live:
        balances = await ctx.exchange.fetch_balances()
        currency = ctx.spec.capital.currency
        free = balances[currency].free if currency in balances else 0.0
        results["freeBalance"] = {currency: free}
        if free < ctx.spec.capital.initial:
            return failed(
                Phase.API_CHECK,
                "InsufficientBalance",
                f"free {currency} balance {free:.2f} is below the run's capital {ctx.spec.capital.initial:.2f}",
                results,
            )
    return passed(
        Phase.API_CHECK, "ApiReady", f"{exchange_id} reachable, clock in bounds, API key fit to trade", results
    )

"""Order placement that never creates a second order for one intent.

An order is sent once. If the answer is lost (timeout, connection reset, 5xx) the order may or may not exist,
so instead of sending again we ask the exchange for the order by its client order id (a read, retried):
- found: that is our order, return it;
- the exchange says it does not exist (-2013): by default (`max_sends=1`) the call fails as not placed and
  the caller decides later, after looking the id up again; with `max_sends > 1` it is sent again with the
  SAME client order id (safe only where the exchange rejects any reused id, not just open ones);
- the lookup itself keeps failing: `OrderOutcomeUnknown`, and the caller must not send a new order.
A "duplicate order" answer means an order with our id exists: it is resolved by the same lookup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from traiding_adapters.errors import (
    CircuitOpen,
    ClockSkewError,
    DuplicateOrder,
    ExchangeLayerError,
    ExchangeUnavailable,
    OrderNotFound,
    OrderOutcomeUnknown,
)
from traiding_adapters.exchange import Order, OrderRequest
from traiding_adapters.retry import RetryPolicy, call_with_retries

log = logging.getLogger(__name__)


class OrderTransport(Protocol):
    async def send_order(self, request: OrderRequest) -> Order:
        """One attempt to create the order; raises the layer's errors; never retries."""
        ...

    async def lookup_order(self, symbol: str, client_order_id: str) -> Order:
        """One attempt to read the order; raises OrderNotFound when the exchange does not know it."""
        ...


def outcome_uncertain(error: BaseException) -> bool:
    """Whether the order may have reached the exchange despite `error`."""
    if isinstance(error, CircuitOpen | ClockSkewError):
        return False  # raised before anything was sent, or refused before the exchange looked at it
    return isinstance(error, DuplicateOrder) or (isinstance(error, ExchangeLayerError) and error.transient)


async def place_order(
    transport: OrderTransport,
    request: OrderRequest,
    *,
    lookup_policy: RetryPolicy,
    max_sends: int = 2,
    settle_s: float = 0.2,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Order:
    """Create `request`'s order exactly once (see module doc)."""
    coid = request.client_order_id
    sends = 0
    while True:
        sends += 1
        try:
            return await transport.send_order(request)
        except ExchangeLayerError as error:
            if not outcome_uncertain(error):
                raise
            send_error: ExchangeLayerError = error
        log.warning("order %s: outcome unknown after %r; looking it up", coid, send_error)
        await sleep(settle_s)  # let an order the exchange is still processing become visible
        try:
            return await call_with_retries(
                lambda: transport.lookup_order(request.symbol, coid), lookup_policy, sleep=sleep
            )
        except OrderNotFound:
            if isinstance(send_error, DuplicateOrder):
                raise OrderOutcomeUnknown(
                    f"order {coid}: the exchange reports a duplicate client order id but cannot find the order; "
                    "check the account's orders before trading on",
                    coid,
                ) from send_error
            if sends >= max_sends:
                raise ExchangeUnavailable(
                    f"order {coid} was not placed (the exchange confirms it does not exist) after {sends} "
                    f"attempts: {send_error}"
                ) from send_error
            log.warning("order %s does not exist on the exchange; sending it again with the same id", coid)
        except ExchangeLayerError as lookup_error:
            raise OrderOutcomeUnknown(
                f"order {coid}: sending failed ({send_error}) and looking it up failed too ({lookup_error}); "
                "it may exist: look it up by this client order id before sending anything new",
                coid,
            ) from lookup_error

"""The simulator's settings as pydantic models: what the CLI, `run_simulator` and `/_sim/*` accept."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

FaultAction = Literal["hang_before", "drop_before", "error_before", "hang_after", "drop_after", "error_after"]


class ApiKeyConfig(BaseModel):
    """One API key: its HMAC secret, its permissions and the account it trades."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1, description="the value clients send in the X-MBX-APIKEY header")
    secret: SecretStr = Field(description="the HMAC-SHA256 secret requests are signed with")
    can_trade: bool = Field(True, description="enableSpotAndMarginTrading: may place and cancel orders")
    can_withdraw: bool = Field(False, description="enableWithdrawals (reported only; there is no withdraw endpoint)")
    can_read: bool = Field(True, description="enableReading: may call any signed endpoint at all")
    ip_restrict: bool = Field(False, description="ipRestrict flag reported by /sapi/v1/account/apiRestrictions")
    account: str = Field("main", description="the account (balances, orders) this key acts on")


class FaultConfig(BaseModel):
    """Faults applied at random to exchange requests (never to /_sim/*)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a silent default

    latency_ms: float = Field(0.0, ge=0, description="added to every request before it is handled")
    latency_jitter_ms: float = Field(0.0, ge=0, description="uniform random extra latency in [0, jitter]")
    error_rate: float = Field(0.0, ge=0, le=1, description="probability of answering with `error_status`")
    error_status: int = Field(503, ge=500, le=599, description="HTTP status of injected errors")
    timeout_rate: float = Field(0.0, ge=0, le=1, description="probability of hanging before handling")
    hang_ms: float = Field(30_000.0, ge=0, description="how long a hanging request hangs (beyond a client timeout)")
    maintenance: bool = Field(False, description="system status 1; trading and market endpoints answer 503")
    seed: int | None = Field(None, description="seed of the fault dice (None: the simulator seed)")
    paths: list[str] | None = Field(None, description="only requests whose path starts with one of these")


class FaultRule(BaseModel):
    """A targeted fault: the next `count` requests matching method and path get `action`.

    `*_after` actions let the exchange handle the request first (an order IS placed) and then hang,
    drop the connection or answer 5xx: the client cannot know whether its order exists.
    """

    model_config = ConfigDict(extra="forbid")

    method: str = "POST"
    path: str = "/api/v3/order"
    count: int = Field(1, ge=1)
    action: FaultAction = "hang_after"
    status: int = Field(503, ge=500, le=599)
    hang_ms: float = Field(30_000.0, ge=0)


class DataSource(BaseModel):
    """A candle file replayed for one symbol, or a folder of files named like BTC_USDT-5m.json.

    Symbol and interval are read from the file name when not given.
    """

    model_config = ConfigDict(extra="forbid")

    symbol: str | None = Field(None, description="ccxt symbol, e.g. BTC/USDT; default: from the file name")
    path: Path
    interval: str | None = Field(None, description="e.g. 5m; default: from a name like BTC_USDT-5m.json")


def _default_balances() -> dict[str, Decimal]:
    return {"USDT": Decimal(10_000), "BTC": Decimal("0.5"), "ETH": Decimal(5), "BNB": Decimal(0)}


def _default_synthetic() -> dict[str, float]:
    return {"BTC/USDT": 30_000.0, "ETH/USDT": 2_000.0, "SOL/USDT": 50.0}


class SimulatorConfig(BaseModel):
    """Everything the simulator needs to start; every field has a usable default."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a silent default

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    data: list[DataSource] = Field(default_factory=list, description="empty: a seeded synthetic market")
    speed: float = Field(1.0, ge=0, description="replay speed: market milliseconds per wall millisecond")
    start: datetime | int | None = Field(None, description="replay start (datetime or epoch ms) in the data")
    start_fraction: float = Field(0.8, ge=0, le=1, description="default start: this far through the data span")
    align_to_wall_clock: bool = Field(
        True,
        description="shift candle times by whole days so that the replay runs on the wall clock's date: one clock "
        "for server time, candles, orders and trades (see docs/simulator.md, 'One clock')",
    )
    shift_days: int | None = Field(
        None,
        description="shift candle times by exactly this many days instead (the replay of a run resumed on another "
        "day keeps the dates it started with)",
    )
    seed: int = 7
    synthetic_symbols: dict[str, float] = Field(default_factory=_default_synthetic)
    synthetic_days: int = Field(30, ge=1, le=365)
    synthetic_interval: str = "1m"
    weight_limit: int = Field(6000, ge=1, description="REQUEST_WEIGHT per IP per minute for /api/*")
    sapi_weight_limit: int = Field(12_000, ge=1, description="IP weight per minute for /sapi/*")
    weight_window_ms: int = Field(60_000, ge=100)
    ban_after_rejections: int = Field(3, ge=0, description="429s served in one window before an IP is banned")
    ban_ms: int = Field(120_000, ge=1, description="first ban length; repeat bans double, up to 3 days")
    order_limit_10s: int = Field(100, ge=1, description="ORDERS per account per 10 seconds")
    order_limit_1d: int = Field(200_000, ge=1, description="ORDERS per account per day")
    order_counting: Literal["unfilled", "all"] = Field(
        "unfilled",
        description="'unfilled' (Binance): accepted orders count and an order's first fill takes it off again; "
        "'all': every order that reaches the matching engine counts, accepted or not, and fills change nothing",
    )
    keys: list[ApiKeyConfig] = Field(default_factory=list)
    initial_balances: dict[str, Decimal] = Field(default_factory=_default_balances)
    taker_fee: Decimal = Field(Decimal("0.001"), ge=0, lt=1)
    maker_fee: Decimal = Field(Decimal("0.001"), ge=0, lt=1)
    spread_bps: float = Field(2.0, ge=0, description="full bid/ask spread around the replay price in a calm market")
    book_volatility_spread: float = Field(
        0.05, ge=0, description="full spread added per basis point of the previous candle's high-low range"
    )
    book_depth_fraction: float = Field(
        0.005, gt=0, le=1, description="average share of the previous candle's volume at each level near the touch"
    )
    book_min_level_notional: float = Field(1_000.0, ge=0, description="quote currency every book level holds at least")
    book_levels: int = Field(5_000, ge=1, le=5_000, description="levels a side an order may walk (/depth's maximum)")
    max_recv_window_ms: int = 60_000
    default_recv_window_ms: int = 5_000
    time_offset_ms: int = Field(0, description="exchange clock = wall clock + offset (clock-skew tests)")
    duplicate_client_order_id: Literal["any", "open"] = Field(
        "open",
        description="reject a reused newClientOrderId only while that order is open ('open', what Binance does) "
        "or always ('any', a stricter exchange for tests)",
    )
    tick_interval_s: float = Field(1.0, gt=0, description="how often resting orders are matched")
    faults: FaultConfig = Field(default_factory=FaultConfig)
    log_requests: bool = True

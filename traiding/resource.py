"""The TradingRun resource: the typed model that is the one source of truth for the CRD.

Spec models are frozen pydantic models whose field names are the manifest's camelCase names.
Every field carries a description (the CRD generator refuses one without) and rules that a
schema can say are attached as `x-kubernetes-validations` so the API server enforces them too;
`TradingRunSpec.model_validate` enforces the same rules for `traiding run`, which has no API server.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

API_GROUP = "traiding.io"
API_VERSION = "v1alpha1"
KIND = "TradingRun"
PLURAL = "tradingruns"
SINGULAR = "tradingrun"
SHORT_NAMES = ("tr",)

TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
DURATION_PATTERN = r"^[1-9][0-9]*(s|m|h|d|w)$"
SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}/[A-Z0-9]{2,20}$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _validations(*rules: tuple[str, str]) -> dict[str, Any]:
    """CEL rules for the API server: (rule, message) pairs, written next to the model they guard."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


class SpecModel(BaseModel):
    """Base of every spec model: immutable, unknown fields refused (the API server prunes them)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Mode(StrEnum):
    DRY_RUN = "dry-run"
    LIVE = "live"


SECRET_KEYS = ("apiKey", "secret")  # the keys a credentials Secret must have
# And the one it may have (exchanges such as OKX and KuCoin need it).
PASSPHRASE_KEY = "passphrase"  # nosec B105  # the name of a Secret's key, not its value


class SecretRef(SpecModel):
    name: str = Field(
        description=(
            "Name of a Secret in the run's namespace with the exchange key pair under fixed keys: apiKey and "
            "secret, and passphrase where the exchange needs one. With the annotation "
            "traiding.io/encryption: fernet its values are Fernet tokens (`traiding keys encrypt`) that only "
            "the operator's keys decrypt."
        ),
        min_length=1,
        max_length=253,
        pattern=DNS_LABEL_PATTERN,
    )


SYNTHETIC_DATA = "synthetic"


SIMULATOR_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_NAMED_SIMULATOR_RULE = (
    "simulator.data and simulator.start describe a simulator `traiding run` starts itself; a named simulator "
    "(simulator.name) replays its own data from its own start"
)


class SimulatorSpec(SpecModel):
    """Trade against the project's Binance-compatible exchange simulator instead of a real exchange."""

    model_config = ConfigDict(
        json_schema_extra={
            "description": "Use the exchange simulator.",
            **_validations(("!has(self.name) || (!has(self.data) && !has(self.start))", _NAMED_SIMULATOR_RULE)),
        }
    )

    data: str | None = Field(
        default=None,
        description=(
            "Candles the simulator replays: a candle file or a folder of them, such as a freqtrade data "
            "directory (files named like BTC_USDT-5m.json, .json.gz, .csv or .feather), relative to the "
            "manifest's folder; `synthetic` for a seeded random walk. Empty: the real candles bundled with "
            "traiding (Binance BTC/USDT and ETH/USDT at 5m and 1h, 2020-12-01 to 2021-07-17). Read by "
            "`traiding run`, which starts the simulator; the operator's simulator replays its own data."
        ),
    )
    start: AwareDatetime | None = Field(
        default=None,
        description=(
            "Where the replay starts, a time in the data (RFC 3339, e.g. 2021-06-01T00:00:00Z): the "
            "DataCheck lookback ends there and the trading session follows it. Empty: 80% through the span "
            "of the replayed data, for real and synthetic data alike. Read by `traiding run`, like data."
        ),
    )
    speed: float = Field(
        default=300.0,
        gt=0,
        le=100000,
        description="Replay speed: seconds of market time per second of wall time.",
    )
    seed: int = Field(default=7, ge=0, description="Seed of the synthetic market and of simulated fills.")
    name: str | None = Field(
        default=None,
        max_length=63,
        pattern=SIMULATOR_NAME_PATTERN,
        description=(
            "A running simulator by its name in the installation's allowlist (TRAIDING_SIMULATORS; the chart's "
            "operator.simulators), never an address: the address comes from that configuration. Empty: "
            "`traiding run` starts one itself and the operator uses the simulator named default."
        ),
    )

    @model_validator(mode="after")
    def _name_excludes_data_and_start(self) -> SimulatorSpec:
        if self.name is not None and (self.data is not None or self.start is not None):
            raise ValueError(_NAMED_SIMULATOR_RULE)
        return self


class ExchangeSpec(SpecModel):
    id: str = Field(
        default="binance",
        description="ccxt exchange id (binance, kraken, ...).",
        min_length=1,
        max_length=40,
        pattern=r"^[a-z0-9_]+$",
    )
    credentialsSecretRef: SecretRef | None = Field(
        default=None,
        description="Secret with the API key and secret. Optional for dry runs, required for live runs.",
    )
    simulator: SimulatorSpec | None = Field(
        default=None, description="When set, the run talks to the exchange simulator instead of the exchange."
    )


class MarketSpec(SpecModel):
    symbols: list[Annotated[str, Field(pattern=SYMBOL_PATTERN, max_length=41)]] = Field(
        description="Symbols to trade, in ccxt form BASE/QUOTE (e.g. BTC/USDT).",
        min_length=1,
        max_length=20,
    )
    timeframe: Literal[TIMEFRAMES] = Field(  # type: ignore[valid-type]
        default="5m", description="Candle timeframe the strategy runs on."
    )

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, symbols: list[str]) -> list[str]:
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be unique")
        return symbols


StrategyParamValue = float


class StrategySpec(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            (
                "!has(self.params) || !('fast' in self.params && 'slow' in self.params) || "
                "self.params['slow'] > self.params['fast']",
                "strategy.params.slow must be greater than strategy.params.fast",
            ),
        )
    )

    name: str = Field(
        description="Registered strategy name (sma-crossover, ema-crossover, rsi, bollinger-breakout).",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )
    params: dict[str, StrategyParamValue] = Field(
        default_factory=dict,
        description="Numeric strategy parameters by name (e.g. fast: 20, slow: 50); unset ones take defaults.",
        max_length=16,
    )

    @model_validator(mode="after")
    def _slow_above_fast(self) -> StrategySpec:
        fast, slow = self.params.get("fast"), self.params.get("slow")
        if fast is not None and slow is not None and slow <= fast:
            raise ValueError("strategy.params.slow must be greater than strategy.params.fast")
        return self


class CapitalSpec(SpecModel):
    currency: str = Field(
        default="USDT", description="Quote currency the capital is held in.", pattern=r"^[A-Z0-9]{2,20}$"
    )
    initial: float = Field(
        default=10000.0, gt=0, description="Capital the run starts with, in `currency`; must be positive."
    )


class RiskSpec(SpecModel):
    maxPositionFraction: float = Field(
        default=0.5, gt=0, le=1, description="Largest fraction of equity one position may take (0-1]."
    )
    stopLossPct: float | None = Field(
        default=None, gt=0, lt=100, description="Stop loss below the entry price, in percent; empty: none."
    )
    stopOnExchange: bool = Field(
        default=True,
        description=(
            "With a stop loss: rest it on the exchange as a stop-limit sell (Binance STOP_LOSS_LIMIT) so it holds "
            "while the operator is down; the paper account of a dry run simulates it. Where the exchange has no "
            "such order the session checks the stop on every closed candle."
        ),
    )
    dailyLossLimitPct: float = Field(
        default=5.0,
        gt=0,
        le=100,
        description="No new positions for the rest of the UTC day once the day's loss reaches this percent.",
    )
    maxDrawdownPct: float = Field(
        default=20.0,
        gt=0,
        le=100,
        description="Kill switch: close everything and stop the session at this drawdown from the peak.",
    )


class CostsSpec(SpecModel):
    feeRate: float = Field(
        default=0.001, ge=0, lt=0.1, description="Fee as a fraction of notional per side (0.001 = 0.1%)."
    )
    slippagePct: float = Field(
        default=0.05,
        ge=0,
        lt=10,
        description=(
            "Slippage in percent of price: against each backtest fill, against a paper fill where the market"
            " shows no order book (where it does, the book's levels are the slippage), and as headroom when an"
            " entry is sized."
        ),
    )


class DataCheckGate(SpecModel):
    lookback: str = Field(
        default="30d", pattern=DURATION_PATTERN, description="History to fetch and check, e.g. 30d, 12h."
    )
    maxGapRatio: float = Field(
        default=0.01, ge=0, le=1, description="Largest tolerated fraction of missing candles (0.01 = 1%)."
    )
    maxOutlierRatio: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description=(
            "Largest tolerated fraction of outlier candles (moves beyond 20 robust sigmas; 0.005 = 0.5%). "
            "Real crashes produce some; a bad feed produces many."
        ),
    )
    maxStaleness: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        description="Largest tolerated age of the newest candle; empty means three timeframes.",
    )


class BacktestGate(SpecModel):
    minTrades: int = Field(default=20, ge=0, description="Fewest trades the backtest must make.")
    minSharpe: float | None = Field(default=0.5, description="Lowest annualised Sharpe ratio; empty: no gate.")
    maxDrawdownPct: float | None = Field(
        default=25.0, gt=0, le=100, description="Largest tolerated max drawdown in percent; empty: no gate."
    )
    minTotalReturnPct: float | None = Field(default=None, description="Lowest total return in percent; empty: no gate.")
    minWinRatePct: float | None = Field(
        default=None, ge=0, le=100, description="Lowest share of winning trades in percent; empty: no gate."
    )
    minProfitFactor: float | None = Field(
        default=None, ge=0, description="Lowest gross profit / gross loss; empty: no gate."
    )


class ApiCheckGate(SpecModel):
    maxClockSkewMs: int = Field(
        default=1000, ge=1, le=60000, description="Largest tolerated clock difference to the exchange, in ms."
    )
    refuseWithdrawalKeys: bool = Field(default=True, description="Refuse API keys that are allowed to withdraw funds.")


class GatesSpec(SpecModel):
    dataCheck: DataCheckGate = Field(default_factory=DataCheckGate, description="Data quality gate.")
    backtest: BacktestGate = Field(default_factory=BacktestGate, description="Backtest gate.")
    apiCheck: ApiCheckGate = Field(default_factory=ApiCheckGate, description="Exchange and API key gate.")


class OnDelete(StrEnum):
    FLATTEN = "Flatten"
    LEAVE_POSITIONS = "LeavePositions"


class SessionSpec(SpecModel):
    duration: str = Field(
        default="12h", pattern=DURATION_PATTERN, description="How long the trading session runs, e.g. 12h, 30m."
    )
    onDelete: OnDelete = Field(
        default=OnDelete.FLATTEN,
        description=(
            "What deleting a trading run does with its positions: Flatten (default) cancels its orders and sells "
            "its positions before the object goes; LeavePositions leaves them, and their protective stops, on "
            "the exchange and says so in an Event."
        ),
    )


class TimeoutsSpec(SpecModel):
    """Deadlines per phase (as Argo's activeDeadlineSeconds): work still running at its deadline is cancelled."""

    dataCheck: str = Field(default="15m", pattern=DURATION_PATTERN, description="Deadline of DataCheck.")
    backtest: str = Field(default="15m", pattern=DURATION_PATTERN, description="Deadline of Backtest.")
    apiCheck: str = Field(default="10m", pattern=DURATION_PATTERN, description="Deadline of ApiCheck.")
    trading: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        description=(
            "Deadline of Trading; empty: the session's duration x 1.1 plus 15m (room for outages). A session "
            "past it is liquidated and the run fails."
        ),
    )
    reporting: str = Field(default="10m", pattern=DURATION_PATTERN, description="Deadline of Reporting.")


class ApprovalSpec(SpecModel):
    ttl: str = Field(
        default="24h",
        pattern=DURATION_PATTERN,
        description="How long an approval stays valid after it was given.",
    )


class TradingRunSpec(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            (
                "self.mode != 'live' || has(self.exchange.credentialsSecretRef)",
                "live runs need exchange.credentialsSecretRef",
            ),
        )
    )

    mode: Mode = Field(
        default=Mode.DRY_RUN,
        description="dry-run (default): simulated fills on real prices; live: real orders after approval.",
    )
    exchange: ExchangeSpec = Field(default_factory=ExchangeSpec, description="Exchange to trade on.")
    market: MarketSpec = Field(description="Symbols and timeframe.")
    strategy: StrategySpec = Field(description="Strategy and its parameters.")
    capital: CapitalSpec = Field(default_factory=CapitalSpec, description="Starting capital.")
    risk: RiskSpec = Field(default_factory=RiskSpec, description="Risk limits of the trading session.")
    costs: CostsSpec = Field(default_factory=CostsSpec, description="Fees and slippage for backtest and dry run.")
    gates: GatesSpec = Field(default_factory=GatesSpec, description="Thresholds each phase must pass.")
    session: SessionSpec = Field(default_factory=SessionSpec, description="Trading session settings.")
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec, description="Deadlines per phase.")
    approval: ApprovalSpec = Field(default_factory=ApprovalSpec, description="Approval settings of live runs.")

    @model_validator(mode="after")
    def _live_needs_credentials(self) -> TradingRunSpec:
        if self.mode is Mode.LIVE and self.exchange.credentialsSecretRef is None:
            raise ValueError("live runs need exchange.credentialsSecretRef")
        return self


# ---------------------------------------------------------------------------------------------
# Status: written by the operator only; open-ended result maps keep unknown fields.


class StatusModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    type: str = Field(description="Condition type, e.g. Ready, DataChecked, Backtested, ApiChecked, Approved.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="One-word CamelCase reason.")
    message: str = Field(default="", description="Human-readable details.")
    lastTransitionTime: datetime = Field(description="When the status last changed.")
    observedGeneration: int | None = Field(default=None, description="Spec generation the condition is for.")


class PhaseRecord(StatusModel):
    state: Literal["Running", "Passed", "Failed", "Skipped", "Cancelled"] = Field(description="Outcome of the phase.")
    startedAt: datetime | None = Field(default=None, description="When the phase started.")
    finishedAt: datetime | None = Field(default=None, description="When the phase finished.")
    attempts: int = Field(default=0, ge=0, description="Attempts made, including retries of transient errors.")
    message: str = Field(default="", description="What happened, in words a trader can act on.")
    results: dict[str, Any] = Field(
        default_factory=dict,
        description="Key results of the phase (metrics, gate margins, checks).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Summary(StatusModel):
    initialEquity: float | None = Field(default=None, description="Equity at the start of the session.")
    finalEquity: float | None = Field(default=None, description="Equity at the end of the session.")
    pnl: float | None = Field(default=None, description="Profit and loss in the capital currency.")
    roiPct: float | None = Field(default=None, description="Return on the initial capital, in percent.")
    trades: int | None = Field(default=None, description="Closed trades.")
    wins: int | None = Field(default=None, description="Winning trades.")
    losses: int | None = Field(default=None, description="Losing trades.")
    maxDrawdownPct: float | None = Field(default=None, description="Largest drawdown from a peak, in percent.")
    sharpe: float | None = Field(
        default=None, description="Annualised Sharpe ratio of the session; empty when not meaningful (sharpeNote)."
    )
    sharpeNote: str | None = Field(
        default=None, description="Why sharpe is empty, e.g. a session too short to annualise (under 7 days)."
    )
    marketChangePct: float | None = Field(
        default=None,
        description="Buy and hold over the session in percent: the mean over the symbols of last close / first close.",
    )


class ApprovalRecord(StatusModel):
    approvedBy: str = Field(description="Who approved the live run.")
    approvedAt: datetime = Field(description="When the approval was given.")
    expiresAt: datetime = Field(description="When the approval expires.")


class TradingRunStatus(StatusModel):
    phase: str = Field(default="Pending", description="Current phase of the run.")
    observedGeneration: int | None = Field(default=None, description="Spec generation the status is for.")
    reason: str | None = Field(default=None, description="Reason of the last transition (CamelCase).")
    message: str | None = Field(default=None, description="Message of the last transition.")
    startedAt: datetime | None = Field(default=None, description="When the run started.")
    finishedAt: datetime | None = Field(default=None, description="When the run reached a final phase.")
    conditions: list[Condition] = Field(default_factory=list, description="Kubernetes-style conditions.")
    phases: dict[str, PhaseRecord] = Field(default_factory=dict, description="Per-phase records by phase name.")
    summary: Summary | None = Field(default=None, description="Result summary of the trading session.")
    approval: ApprovalRecord | None = Field(default=None, description="The recorded approval of a live run.")
    checkpoint: dict[str, Any] = Field(
        default_factory=dict,
        description="State the trading session resumes from after an operator restart.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    def set_condition(self, condition: Condition) -> None:
        """Replace the condition of that type, keeping its transition time when its status did not change."""
        old = next((c for c in self.conditions if c.type == condition.type), None)
        if old is not None and old.status == condition.status:
            condition = condition.model_copy(update={"lastTransitionTime": old.lastTransitionTime})
        self.conditions = [*(c for c in self.conditions if c.type != condition.type), condition]


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=253)
    namespace: str | None = None


class TradingRun(BaseModel):
    """A whole manifest, as `traiding run` reads it from a file."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["traiding.io/v1alpha1"]
    kind: Literal["TradingRun"]
    metadata: ObjectMeta
    spec: TradingRunSpec
    status: TradingRunStatus | None = None


def field_path(loc: tuple[int | str, ...]) -> str:
    """`('spec', 'market', 'symbols', 0)` -> `spec.market.symbols[0]`: the path a user sees in errors."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", part):
            out += f".{part}" if out else part
    return out

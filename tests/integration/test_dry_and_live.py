"""A dry run and a live run of the same strategy and window against the simulator agree: the paper broker of the
dry run fills by the simulator's own fill model, the live run's orders go through the real ccxt client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_traiding_run import run_cli
from traiding_adapters import Credentials, ExchangeHub, ExchangeSettings, OrderRequest, PaperBroker, PaperSettings
from traiding_simulator import ApiKeyConfig, DataSource, SimulatorConfig, ThreadedSimulator, client_urls

KEY, SECRET = "twin-key", "twin-secret"


def manifest(tmp_path: Path, shared_data: Path, mode: str) -> Path:
    spec: dict[str, Any] = {
        "mode": mode,
        "exchange": {
            "id": "binance",
            # the simulator `traiding run` starts itself: both runs replay the same window from the same start
            "simulator": {"data": str(shared_data / "ETH_USDT-5m.json"), "start": "2021-06-01T00:00:00Z", "speed": 750},
        },
        "market": {"symbols": ["ETH/USDT"], "timeframe": "5m"},
        "strategy": {"name": "sma-crossover", "params": {"fast": 10, "slow": 30}},
        "capital": {"currency": "USDT", "initial": 10_000},
        "risk": {"maxPositionFraction": 0.5, "stopLossPct": 2, "dailyLossLimitPct": 5, "maxDrawdownPct": 20},
        "gates": {"dataCheck": {"lookback": "7d"}, "backtest": {"minTrades": 1}},
        "session": {"duration": "12h"},
    }
    if mode == "live":
        spec["exchange"]["credentialsSecretRef"] = {"name": "binance-keys"}
    path = tmp_path / f"{mode}.yaml"
    document = {"apiVersion": "traiding.io/v1alpha1", "kind": "TradingRun", "metadata": {"name": f"twin-{mode}"}}
    path.write_text(yaml.safe_dump({**document, "spec": spec}))
    return path


def session_of(output: Path) -> dict[str, Any]:
    status = json.loads((output / "status.json").read_text())
    assert status["phase"] == "Succeeded", status.get("message")
    session: dict[str, Any] = status["checkpoint"]["session"]
    return session


def test_a_dry_and_a_live_run_of_one_window_make_the_same_trades_and_end_within_half_a_percent(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRAIDING_API_KEY", raising=False)
    monkeypatch.delenv("TRAIDING_API_SECRET", raising=False)
    assert run_cli(manifest(tmp_path, shared_data, "dry-run"), tmp_path / "dry", "-q") == 0
    monkeypatch.setenv("TRAIDING_API_KEY", KEY)
    monkeypatch.setenv("TRAIDING_API_SECRET", SECRET)
    live_manifest = manifest(tmp_path, shared_data, "live")
    assert run_cli(live_manifest, tmp_path / "live", "-q") == 3  # every gate passed: it waits for the approval
    assert run_cli(live_manifest, tmp_path / "live", "-q", "--resume", "--approve-live") == 0

    dry, live = session_of(tmp_path / "dry"), session_of(tmp_path / "live")
    trades = [(t["entry_time"], t["exit_time"], t["reason"]) for t in dry["trades"]]
    assert len(trades) >= 2, "12 hours of a 10/30 crossover on 5m candles trade a few times"
    assert [(t["entry_time"], t["exit_time"], t["reason"]) for t in live["trades"]] == trades
    for d, lv in zip(dry["trades"], live["trades"], strict=True):
        # Market orders go out when a step sees the candle closed, up to half a candle later at 750x, in each run
        # on its own; and the live run sells what it holds after Binance took the buy's commission in ETH.
        assert lv["amount"] == pytest.approx(d["amount"], rel=1e-2)
        assert lv["entry_price"] == pytest.approx(d["entry_price"], rel=1e-2)
        assert lv["exit_price"] == pytest.approx(d["exit_price"], rel=1e-2)
    dry_equity, live_equity = dry["equity"][-1][1], live["equity"][-1][1]
    assert live_equity == pytest.approx(dry_equity, rel=5e-3)
    assert dry_equity != 10_000  # they traded


def test_a_paper_stop_fills_as_the_simulators_own_stop_does(shared_data: Path) -> None:
    """The same protective stop resting on the simulator and in a paper account: the same trigger moment and the
    same fill, from the same book model."""
    config = SimulatorConfig(
        data=[DataSource(path=shared_data / "ETH_USDT-5m.json")],
        keys=[ApiKeyConfig(key=KEY, secret=SECRET)],
        start=1_622_505_600_000,  # 2021-06-01T00:00Z
        speed=0,
        log_requests=False,
    )

    async def both() -> tuple[Any, Any]:
        with ThreadedSimulator(config) as sim:
            hub = ExchangeHub(ExchangeSettings())
            exchange = hub.get("binance", Credentials(KEY, SECRET), urls=client_urls(sim.base_url))
            try:
                ticker = await exchange.fetch_ticker("ETH/USDT")
                assert ticker.bid is not None
                stop = round(ticker.bid * 0.99, 2)
                request = OrderRequest(
                    symbol="ETH/USDT",
                    side="sell",
                    type="stop_loss_limit",
                    amount=1.0,
                    price=round(stop * 0.99, 2),
                    stop_price=stop,
                    client_order_id="twin-stop",
                )
                paper = PaperBroker(
                    exchange, {"USDT": 0.0, "ETH": 1.0}, PaperSettings(fee_rate=0.001, candle_timeframe="5m")
                )
                await exchange.create_order(request)
                await paper.create_order(request)
                sim.set_clock(replay_time=sim.simulator.state.replay.start_ms + 3 * 86_400_000)  # three days on
                # Market data is shared between runs and may be a moment old: past that moment, both see the jump.
                await asyncio.sleep(ExchangeSettings().market_data_max_age_s * 2)
                live = await exchange.fetch_order("ETH/USDT", client_order_id="twin-stop")
                dry = await paper.fetch_order("ETH/USDT", client_order_id="twin-stop")
            finally:
                await exchange.close()
                await hub.close()
        return live, dry

    live, dry = asyncio.run(both())
    assert live.status == dry.status == "closed", "the 1% stop is hit within three days"
    assert dry.last_trade_timestamp == live.last_trade_timestamp
    assert dry.average == pytest.approx(live.average, rel=1e-9)

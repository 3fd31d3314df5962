"""`traiding simulator` arguments -> SimulatorConfig, and the data sources it accepts."""

from __future__ import annotations

import argparse
import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from traiding.data import BUNDLED_CANDLES
from traiding.errors import UserError
from traiding_simulator.cli import add_arguments, config_from_args, parse_key
from traiding_simulator.config import DataSource, SimulatorConfig
from traiding_simulator.loading import DataError, build_market, expand_sources, parse_data_argument


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_bind_loopback_and_replay_the_bundled_candles() -> None:
    config = config_from_args(parse())
    assert (config.host, config.port, config.weight_limit) == ("127.0.0.1", 8765, 6000)
    assert config.data == [DataSource(path=BUNDLED_CANDLES)]
    assert config.align_to_wall_clock and config.duplicate_client_order_id == "open"  # Binance's behaviour
    assert config.order_counting == "unfilled"
    replay = build_market(config.model_copy(update={"align_to_wall_clock": False}))
    market, start = replay.market, replay.start_ms
    assert sorted(market.by_symbol) == ["BTC/USDT", "ETH/USDT"]
    # The default start is 80% through the data's span, for real candles as for a synthetic market.
    assert start == market.first_ms + int((market.end_ms - market.first_ms) * 0.8)
    assert config_from_args(parse("--synthetic")).data == []  # the seeded random walk, on request
    with pytest.raises(UserError, match="exclude each other"):
        config_from_args(parse("--synthetic", "--data", "x.json"))


def test_all_flags(tmp_path: Path) -> None:
    config = config_from_args(
        parse(
            "--port", "0", "--data", f"ETH/USDT={tmp_path}/eth.json@1h", "--speed", "300",
            "--start", "2021-06-01T00:00", "--seed", "3", "--weight-limit", "1200",
            "--key", "k1:s1:trade", "--key", "k2:s2", "--time-offset-ms", "-1500", "--quiet",
            "--spread-bps", "5", "--fee", "0.00075", "--duplicate-client-order-id", "any",
            "--order-counting", "all", "--no-align-to-wall-clock",
        )
    )  # fmt: skip
    assert config.data == [DataSource(symbol="ETH/USDT", path=tmp_path / "eth.json", interval="1h")]
    assert config.speed == 300 and config.seed == 3 and config.weight_limit == 1200
    assert config.start == datetime(2021, 6, 1, tzinfo=UTC)
    assert [(k.key, k.can_trade) for k in config.keys] == [("k1", True), ("k2", False)]
    assert config.keys[0].secret.get_secret_value() == "s1"
    assert config.time_offset_ms == -1500 and config.log_requests is False
    assert config.spread_bps == 5 and config.taker_fee == config.maker_fee == Decimal("0.00075")
    assert config.duplicate_client_order_id == "any" and config.order_counting == "all"
    assert config.align_to_wall_clock is False


def test_a_misspelt_setting_is_an_error() -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig.model_validate({"weight_limt": 10})
    with pytest.raises(UserError):
        config_from_args(parse("--fee", "cheap"))


@pytest.mark.parametrize("text", ["nosecret", ":s", "k:s:admin"])
def test_bad_keys_are_user_errors(text: str) -> None:
    with pytest.raises(UserError):
        parse_key(text)


def test_key_permissions() -> None:
    key = parse_key("k:topsecret:trade:withdraw")
    assert key.can_trade and key.can_withdraw
    assert "topsecret" not in repr(key) and "topsecret" not in str(key.model_dump())  # secrets never print


def test_bad_start_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--start"):
        config_from_args(parse("--start", "yesterday"))


def test_data_arguments() -> None:
    assert parse_data_argument("BTC_USDT-5m.json") == DataSource(path=Path("BTC_USDT-5m.json"))
    assert parse_data_argument("btc/usdt=x.csv@5m") == DataSource(symbol="BTC/USDT", path=Path("x.csv"), interval="5m")
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        parse_data_argument("BTCUSDT=x.json")


def test_sources_take_symbol_and_interval_from_file_names_and_folders(tmp_path: Path) -> None:
    for name in ("BTC_USDT-5m.json", "ETH_USDT-1h.csv", "README.md"):
        (tmp_path / name).write_text("[]")
    expanded = expand_sources([DataSource(path=tmp_path)])
    assert [(s.symbol, s.interval, s.path.name) for s in expanded] == [
        ("BTC/USDT", "5m", "BTC_USDT-5m.json"),
        ("ETH/USDT", "1h", "ETH_USDT-1h.csv"),
    ]
    with pytest.raises(DataError, match="name it like"):
        expand_sources([DataSource(path=tmp_path / "README.md")])


def test_missing_files_and_unknown_intervals_are_reported() -> None:
    with pytest.raises(DataError, match="no such candle file"):
        build_market(SimulatorConfig(data=[DataSource(path=Path("/nowhere/BTC_USDT-5m.json"))]))
    with pytest.raises(DataError, match="interval '7m'"):
        build_market(SimulatorConfig(data=[DataSource(symbol="BTC/USDT", path=Path("x.json"), interval="7m")]))


def test_replay_starts_80_percent_through_or_where_asked() -> None:
    replay = build_market(SimulatorConfig(synthetic_days=10, align_to_wall_clock=False))
    market = replay.market
    assert replay.start_ms == market.first_ms + int((market.end_ms - market.first_ms) * 0.8)
    assert replay.shift_ms == 0
    asked = build_market(SimulatorConfig(synthetic_days=10, start=market.first_ms + 5, align_to_wall_clock=False))
    assert asked.start_ms == market.first_ms + 5


def test_aligned_to_the_wall_clock_the_replay_runs_on_its_date_in_whole_days() -> None:
    data = build_market(SimulatorConfig(synthetic_days=10, align_to_wall_clock=False)).market
    wall = 1_900_000_000_123
    # no start: the replay starts at the wall clock itself, a point at most a day after the default one
    aligned = build_market(SimulatorConfig(synthetic_days=10), wall_now_ms=wall)
    assert aligned.start_ms == wall
    assert aligned.shift_ms % 86_400_000 == 0 and aligned.shift_ms > 0  # whole days: intervals stay aligned
    assert aligned.market.first_ms == data.first_ms + aligned.shift_ms
    assert 0 <= (wall - aligned.shift_ms) - (data.first_ms + int((data.end_ms - data.first_ms) * 0.8)) < 86_400_000
    # a start in the data keeps exactly that moment of the data, on the last such day that is not after now
    asked = data.first_ms + 3 * 86_400_000 + 12_345
    pinned = build_market(SimulatorConfig(synthetic_days=10, start=asked), wall_now_ms=wall)
    assert pinned.start_ms - pinned.shift_ms == asked
    assert 0 <= wall - pinned.start_ms < 86_400_000


def test_aligned_near_the_end_of_short_data_the_replay_starts_before_the_default_point() -> None:
    day = 86_400_000
    data = build_market(SimulatorConfig(synthetic_days=1, align_to_wall_clock=False))
    # at this time of day the default point (80% through) plus the part of the day would be past the data's end
    wall = data.start_ms + 400 * day + 23 * 3_600_000
    aligned = build_market(SimulatorConfig(synthetic_days=1), wall_now_ms=wall)
    assert aligned.start_ms == wall
    in_data = aligned.start_ms - aligned.shift_ms
    assert data.market.first_ms <= in_data < data.start_ms < data.market.end_ms


def _rows(times: list[int]) -> list[list[float]]:
    return [[1_606_780_800_000 + t * 300_000, 100.0, 101.0, 99.0, 100.5, 1.0] for t in times]


def test_a_freqtrade_data_directory_replays_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "ETH_USDT-5m.json.gz").write_bytes(gzip.compress(json.dumps(_rows(list(range(100)))).encode()))
    (tmp_path / "BTC_USDT-5m.csv").write_text(
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"{r[0]},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]}\n" for r in _rows([0, 1, 2]))
    )
    market = build_market(SimulatorConfig(data=[DataSource(path=tmp_path)])).market
    assert sorted(market.by_symbol) == ["BTC/USDT", "ETH/USDT"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"holds no candle files named like BTC_USDT-5m\.json"):
        build_market(SimulatorConfig(data=[DataSource(path=empty)]))


def test_a_file_with_duplicate_or_unsorted_rows_is_refused_saying_where(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-5m.json"
    path.write_text(json.dumps(_rows([0, 1, 1, 3, 2])))
    with pytest.raises(DataError) as caught:
        build_market(SimulatorConfig(data=[DataSource(path=path)]))
    assert str(caught.value) == (
        f"{path}: 1 duplicate row (same open time as an earlier row; first: row 3, 2020-12-01T00:05:00Z); "
        "1 row out of time order (first: row 5, 2020-12-01T00:10:00Z); the simulator replays one candle per time "
        "in ascending order, so sort the file and keep one row per time (`traiding backtest --data FILE` reports "
        "the same)"
    )


def test_a_start_outside_the_data_is_refused_naming_its_span() -> None:
    with pytest.raises(
        DataError, match=r"replay start 2030-01-01T00:00:00Z is outside the data, which runs from 2024-01-01"
    ):
        build_market(SimulatorConfig(synthetic_days=10, start=datetime(2030, 1, 1, tzinfo=UTC)))

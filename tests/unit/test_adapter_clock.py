"""Clock-skew measurement (NTP-style), the bound check and the correction handed to ccxt."""

from __future__ import annotations

import pytest

from traiding_adapters.clock import (
    ClockOffset,
    ClockSample,
    best_offset,
    ccxt_time_difference,
    check_skew,
    measure_offset,
)
from traiding_adapters.errors import ClockSkewError


def test_offset_is_server_minus_midpoint() -> None:
    sample = ClockSample(sent_ms=1000.0, server_ms=3050.0, received_ms=1100.0)
    assert sample.rtt_ms == 100.0
    assert sample.offset_ms == 2000.0


def test_lowest_round_trip_sample_wins() -> None:
    samples = [
        ClockSample(0.0, 1500.0, 400.0),  # rtt 400, offset 1300
        ClockSample(1000.0, 2510.0, 1020.0),  # rtt 20, offset 1500
        ClockSample(2000.0, 3700.0, 2300.0),  # rtt 300, offset 1550
    ]
    best = best_offset(samples)
    assert best.offset_ms == 1500
    assert best.rtt_ms == 20.0
    assert best.samples == 3


def test_no_samples() -> None:
    with pytest.raises(ValueError):
        best_offset([])


async def test_measure_offset_with_a_fake_exchange() -> None:
    local = [0.0]
    true_offset = -1800.0  # the exchange is 1.8 s behind us

    def now() -> float:
        return local[0]

    round_trips = iter([50.0, 10.0, 30.0])

    async def server_time() -> int:
        rtt = next(round_trips)
        local[0] += rtt / 2
        stamp = int(local[0] + true_offset)
        local[0] += rtt / 2
        return stamp

    offset = await measure_offset(server_time, samples=3, now_ms=now)
    assert offset.offset_ms == -1800
    assert offset.rtt_ms == 10.0


def test_check_skew_within_bound() -> None:
    check_skew(ClockOffset(offset_ms=900, rtt_ms=10.0, samples=3), 1000, "binance")


def test_check_skew_message_says_ahead_and_what_to_do() -> None:
    with pytest.raises(ClockSkewError) as info:
        check_skew(ClockOffset(offset_ms=-1800, rtt_ms=10.0, samples=3), 1000, "binance")
    message = str(info.value)
    assert "1800 ms ahead of binance" in message
    assert "NTP" in message
    assert info.value.offset_ms == -1800


def test_check_skew_behind() -> None:
    with pytest.raises(ClockSkewError, match="2500 ms behind binance"):
        check_skew(ClockOffset(offset_ms=2500, rtt_ms=10.0, samples=3), 1000, "binance")


def test_measurement_uncertainty_is_not_held_against_the_clock() -> None:
    # |offset| 1040 but the sample is only exact to +-50: not provably beyond 1000
    check_skew(ClockOffset(offset_ms=1040, rtt_ms=100.0, samples=1), 1000, "binance")


def test_ccxt_time_difference_is_ours_minus_the_exchanges() -> None:
    # ccxt binance signs with nonce = now - timeDifference: with the exchange 1800 ms behind,
    # timeDifference must be +1800 so the nonce lands on the exchange's time
    assert ccxt_time_difference(-1800) == 1800

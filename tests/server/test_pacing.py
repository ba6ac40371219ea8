"""The batched fan-out's window follows the share of time spent writing, between its bounds."""

from __future__ import annotations

import pytest

from server_under_test.config import ConfigError, load_config
from server_under_test.pacing import PERIOD_S, Pacing


def feed(pacing: Pacing, share: float, periods: int, start: float = 0.0) -> float:
    """``periods`` control periods in which writing took ``share`` of the time; returns the end time."""
    now = start
    for _ in range(periods):
        now += PERIOD_S
        pacing.spent(share * PERIOD_S, now)
    return now


def test_window_lengthens_under_load_and_returns_when_it_passes() -> None:
    pacing = Pacing(5.0, 40.0, busy_target=0.25)
    pacing._since = 0.0
    now = feed(pacing, 0.5, 1)
    assert pacing.window_s == pytest.approx(0.005 * 2**0.5)  # scaled by sqrt(share / target)
    now = feed(pacing, 1.0, 10, now)
    assert pacing.window_s == 0.040  # capped at the maximum
    feed(pacing, 0.01, 10, now)
    assert pacing.window_s == 0.005  # light load: back to the minimum (least latency)


def test_without_a_maximum_the_window_is_fixed() -> None:
    pacing = Pacing(10.0)
    pacing._since = 0.0
    feed(pacing, 1.0, 5)
    assert not pacing.adaptive and pacing.window_s == 0.010


def test_a_maximum_below_the_minimum_fixes_the_window() -> None:
    config = load_config("default", ["batch_window_ms=1000"])  # the preset's maximum is 30 ms
    assert not Pacing(config.batch_window_ms, config.batch_window_max_ms).adaptive


def test_busy_target_is_a_share() -> None:
    with pytest.raises(ConfigError) as share:
        load_config("default", ["fanout_busy_target=1.5"])
    assert share.value.key == "fanout_busy_target"

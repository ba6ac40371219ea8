"""The seed's reconnect schedule and the jitter policies."""

from __future__ import annotations

import random

import pytest

from bench.loadgen.backoff import CAP_S, MAX_ATTEMPTS, Backoff, seed_delay

SEED_SCHEDULE = [1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 17.0859375, 25.62890625, 30.0]


def test_seed_schedule_base_1s_factor_1_5_capped_at_30s() -> None:
    assert [seed_delay(n) for n in range(1, 11)] == SEED_SCHEDULE
    assert seed_delay(25) == CAP_S


def test_no_jitter_follows_the_seed_then_gives_up_after_10_attempts() -> None:
    backoff = Backoff()
    delays = [backoff.delay() for _ in range(MAX_ATTEMPTS)]
    assert delays == SEED_SCHEDULE
    assert backoff.delay() is None
    assert backoff.attempt == MAX_ATTEMPTS


def test_reset_after_a_successful_connection_starts_again_at_1s() -> None:
    backoff = Backoff()
    backoff.delay(), backoff.delay()
    backoff.reset()
    assert backoff.delay() == 1.0


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_stays_within_its_bounds(jitter: str) -> None:
    for seed in range(50):
        backoff = Backoff(jitter=jitter, rng=random.Random(seed))
        previous = 1.0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            delay = backoff.delay()
            assert delay is not None
            plain = seed_delay(attempt)
            if jitter == "full":
                assert 0.0 <= delay <= plain
            elif jitter == "equal":
                assert plain / 2 <= delay <= plain
            else:
                assert 1.0 <= delay <= min(CAP_S, previous * 3)
            previous = delay
        assert backoff.delay() is None


def test_jitter_spreads_clients_apart() -> None:
    delays = {Backoff(jitter="full", rng=random.Random(seed)).delay() for seed in range(20)}
    assert len(delays) == 20


def test_unknown_jitter_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter="sometimes")

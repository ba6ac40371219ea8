"""The offered load's own sanity notes."""

from __future__ import annotations

from bench.loadgen import LoadSpec


def test_a_run_that_is_mostly_ramp_is_called_out() -> None:
    warning = LoadSpec("publish", users=510, spawn_rate=100, duration_s=10).ramp_warning()
    assert warning is not None and "takes 5.1 s of the 10 s run" in warning and "raise -t or -r" in warning


def test_a_short_ramp_says_nothing() -> None:
    assert LoadSpec("publish", users=510, spawn_rate=100, duration_s=40).ramp_warning() is None

"""The offered load's own sanity notes."""

from __future__ import annotations

import argparse

import pytest

from bench.cli.options import duration_s
from bench.harness.locust import LoadSpec


def test_a_run_that_is_mostly_ramp_is_called_out() -> None:
    warning = LoadSpec("publish", users=510, spawn_rate=100, duration_s=10).ramp_warning()
    assert warning is not None and "takes 5.1 s of the 10 s run" in warning and "raise -t or -r" in warning


def test_a_short_ramp_says_nothing() -> None:
    assert LoadSpec("publish", users=510, spawn_rate=100, duration_s=40).ramp_warning() is None


@pytest.mark.parametrize(("text", "seconds"), [("45", 45.0), ("2.5", 2.5), ("30s", 30.0), ("2m", 120.0),
                                               ("1h30m", 5400.0), ("1m30s", 90.0)])  # fmt: skip
def test_duration_in_seconds_or_locusts_form(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "30x", "m", "1m 30s", "30s1"])
def test_bad_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        duration_s(text)

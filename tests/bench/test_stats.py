"""Welch's t-test without scipy, checked against known values of Student's t distribution."""

from __future__ import annotations

import random

import pytest

from bench.results import stats


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [(2.0, 10, 0.07339), (2.228, 10, 0.05), (1.0, 3, 0.39100), (12.706, 1, 0.05), (0.0, 5, 1.0)],
)
def test_t_two_sided_p_matches_tables(t: float, df: float, p: float) -> None:
    assert stats.t_two_sided_p(t, df) == pytest.approx(p, abs=5e-4)


def test_clear_difference_is_significant() -> None:
    comp = stats.compare([100.0, 102.0, 98.0], [150.0, 149.0, 153.0])
    assert comp.significant is True
    assert comp.ratio == pytest.approx(150.666 / 100.0, rel=1e-3)
    assert comp.verdict == "significant"


def test_noise_is_not_significant() -> None:
    rng = random.Random(3)
    base = [100 + rng.gauss(0, 5) for _ in range(5)]
    changed = [100 + rng.gauss(0, 5) for _ in range(5)]
    comp = stats.compare(base, changed)
    assert comp.significant is False
    assert comp.verdict == "not significant"


def test_single_runs_cannot_tell() -> None:
    comp = stats.compare([100.0], [200.0])
    assert comp.significant is None and comp.p_value is None
    assert "need --repeat" in comp.verdict


def test_zero_variance() -> None:
    assert stats.welch([0.0, 0.0], [0.0, 0.0]) == 1.0
    assert stats.welch([0.0, 0.0], [1.0, 1.0]) == 0.0
    assert stats.compare([0.0, 0.0], [0.0, 0.0]).ratio is None


def test_noisy_samples() -> None:
    assert stats.is_noisy([100.0, 130.0, 80.0])
    assert not stats.is_noisy([100.0, 102.0, 99.0])
    assert not stats.is_noisy([100.0]) and not stats.is_noisy([0.0, 0.0])

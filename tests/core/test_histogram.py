"""The shared histogram: precision, merging, encoding."""

from __future__ import annotations

import random
from itertools import pairwise

import numpy as np
import pytest

from bench.core.histogram import HIGHEST_US, Histogram


def _samples(n: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.lognormvariate(8, 1.5)) for _ in range(n)]


@pytest.mark.parametrize("p", [1, 50, 90, 99, 99.9])
def test_percentiles_are_within_three_significant_digits(p: float) -> None:
    values = _samples(50_000)
    hist = Histogram()
    for v in values:
        hist.record(v)
    exact = float(np.percentile(np.array(values), p, method="inverted_cdf"))
    assert hist.percentile(p) == pytest.approx(exact, rel=1e-3, abs=1)


def test_small_values_are_exact() -> None:
    hist = Histogram()
    for v in range(0, 2048):
        hist.record(v)
    assert hist.min == 0
    assert hist.max == 2047
    assert hist.percentile(50) == 1023
    assert hist.count == 2048


def test_values_beyond_range_are_clamped_but_max_is_exact() -> None:
    hist = Histogram()
    hist.record(HIGHEST_US * 3)
    hist.record(-5)
    assert hist.max == HIGHEST_US * 3
    assert hist.min == 0
    assert hist.count == 2


def test_merge_of_parts_equals_the_whole_and_survives_encoding() -> None:
    values = _samples(30_000, seed=11)
    whole = Histogram()
    parts = [Histogram() for _ in range(5)]
    for i, v in enumerate(values):
        whole.record(v)
        parts[i % 5].record(v)
    merged = Histogram()
    for part in parts:
        merged.merge(Histogram.decode(part.encode()))
    assert merged.summary_ms() == whole.summary_ms()
    assert merged.distribution() == whole.distribution()


def test_empty_histogram_reads_as_zeros() -> None:
    hist = Histogram()
    assert hist.summary_ms()["count"] == 0
    assert hist.percentile(99) == 0.0
    assert hist.distribution() == []
    assert Histogram.decode(hist.encode()).count == 0


def test_decode_rejects_foreign_encodings() -> None:
    encoded = Histogram().encode()
    encoded["v"] = 99
    with pytest.raises(ValueError):
        Histogram.decode(encoded)


def test_distribution_is_monotonic_and_ends_at_100() -> None:
    hist = Histogram()
    hist.record_many(_samples(5_000))
    dist = hist.distribution()
    assert dist[-1][0] == pytest.approx(100.0)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in pairwise(dist))

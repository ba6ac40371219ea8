"""Small statistics for comparing repeated runs: Welch's t-test, without scipy.

pyperf decides "significant or not" with a two-sample t-test; we use Welch's form (no equal-variance
assumption, since configurations differ in spread as much as in level) at ``ALPHA``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Final

ALPHA: Final = 0.05
NOISY_CV: Final = 0.10  # a spread above 10% of the mean makes a sample "noisy" (pyperf warns likewise)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


@dataclass(frozen=True, slots=True)
class Comparison:
    """How a changed sample compares with a baseline sample of the same metric."""

    base_mean: float
    changed_mean: float
    ratio: float | None  # changed / base; None when the base is 0
    p_value: float | None  # None when a side has fewer than 2 values
    significant: bool | None  # None when it cannot be told

    @property
    def verdict(self) -> str:
        if self.significant is None:
            return "unknown (need --repeat >= 2)"
        if not self.significant:
            return "not significant"
        return "significant"


def welch(base: list[float], changed: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test, or None with fewer than 2 values on a side."""
    if len(base) < 2 or len(changed) < 2:
        return None
    m1, m2 = statistics.fmean(base), statistics.fmean(changed)
    v1, v2 = statistics.variance(base), statistics.variance(changed)
    se2 = v1 / len(base) + v2 / len(changed)
    if se2 == 0.0:
        return 1.0 if m1 == m2 else 0.0
    t = (m2 - m1) / math.sqrt(se2)
    df = se2**2 / ((v1 / len(base)) ** 2 / (len(base) - 1) + (v2 / len(changed)) ** 2 / (len(changed) - 1))
    return t_two_sided_p(t, df)


def compare(base: list[float], changed: list[float], alpha: float = ALPHA) -> Comparison:
    base_mean, changed_mean = statistics.fmean(base), statistics.fmean(changed)
    p = welch(base, changed)
    return Comparison(
        base_mean=base_mean,
        changed_mean=changed_mean,
        ratio=changed_mean / base_mean if base_mean else None,
        p_value=p,
        significant=None if p is None else p < alpha,
    )


def spread(values: list[float]) -> float:
    """Sample standard deviation, 0 for a single value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def is_noisy(values: list[float], threshold: float = NOISY_CV) -> bool:
    """Whether the standard deviation is more than ``threshold`` of the mean (needs 2 values)."""
    if len(values) < 2:
        return False
    mean = statistics.fmean(values)
    return mean != 0 and statistics.stdev(values) / abs(mean) > threshold

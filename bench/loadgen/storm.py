"""The reconnect-storm summary: how fast users came back after their connections were cut. Pure."""

from __future__ import annotations

import math
from typing import Any

CURVE_POINTS = 200


def _summary(values: list[int]) -> dict[str, float | int]:
    """count, min, mean, p50, p90, p99, max of a sorted list (nearest rank)."""

    def rank(p: float) -> int:
        return values[max(0, math.ceil(p / 100 * len(values)) - 1)]

    return {
        "count": len(values),
        "min": values[0],
        "mean": round(sum(values) / len(values), 3),
        "p50": rank(50),
        "p90": rank(90),
        "p99": rank(99),
        "max": values[-1],
    }


def _time_to_fraction(backs: list[float], total: int, fraction: float) -> float | None:
    """Seconds until ``fraction`` of ``total`` users were back, or None if never."""
    needed = max(1, math.ceil(fraction * total))
    return round(backs[needed - 1], 3) if len(backs) >= needed else None


def recovery_curve(backs: list[float], total: int) -> list[list[float]]:
    """``[[t_s, fraction back], ...]`` as a step curve of at most ``CURVE_POINTS`` points."""
    step = max(1, math.ceil(len(backs) / CURVE_POINTS))
    picked = list(range(step - 1, len(backs), step))
    if backs and picked[-1:] != [len(backs) - 1]:
        picked.append(len(backs) - 1)
    return [[0.0, 0.0]] + [[round(backs[i], 3), round((i + 1) / total, 4)] for i in picked]


def storm_summary(
    users: list[dict[str, Any]], attempts_per_s: dict[int, int], *, missed_recovered: int = 0
) -> dict[str, Any] | None:
    """``users``: one ``{down, back, attempts}`` per user whose connection was cut (epoch seconds,
    ``back`` None when it gave up); ``attempts_per_s``: connection attempts per epoch second;
    ``missed_recovered``: messages missed during the outage that the catch-up delivered."""
    if not users:
        return None
    storm_t = min(user["down"] for user in users)
    backs = sorted(user["back"] - storm_t for user in users if user["back"] is not None)
    attempts = sorted(int(user["attempts"]) for user in users)
    total = len(users)
    after = [n for sec, n in attempts_per_s.items() if sec >= int(storm_t)]
    return {
        "users": total,
        "storm_epoch_s": storm_t,
        "back_50_s": _time_to_fraction(backs, total, 0.5),
        "back_95_s": _time_to_fraction(backs, total, 0.95),
        "back_100_s": _time_to_fraction(backs, total, 1.0),
        "attempts_per_user": _summary(attempts),
        "peak_attempts_per_s": max(after, default=0),
        "gave_up": sum(1 for user in users if user["back"] is None),
        "missed_recovered": missed_recovered,
        "recovery_curve": recovery_curve(backs, total),
    }

"""The seed's reconnect schedule, with an optional jitter policy. Pure: no I/O, no clock.

Seed (``handleReconnection``): attempt ``n`` (1-based) waits ``min(1 s * 1.5 ** (n - 1), 30 s)``
before connecting; after 10 failed attempts the client gives up. A successful connection starts
the count again at 1.

Jitter policies (AWS Architecture Blog, "Exponential Backoff and Jitter"); ``d`` is the seed delay:
- ``none``: ``d`` exactly, as the seed does (every client retries in lock-step: a thundering herd);
- ``full``: uniform in ``[0, d]``;
- ``equal``: ``d / 2`` plus uniform in ``[0, d / 2]``;
- ``decorrelated``: uniform in ``[base, previous * 3]``, capped (depends on the previous delay).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

BASE_S: Final = 1.0
FACTOR: Final = 1.5
CAP_S: Final = 30.0
MAX_ATTEMPTS: Final = 10
JITTERS: Final = ("none", "full", "equal", "decorrelated")


def seed_delay(attempt: int, base_s: float = BASE_S, factor: float = FACTOR, cap_s: float = CAP_S) -> float:
    """The seed's delay before attempt ``attempt`` (1-based), without jitter."""
    return min(base_s * factor ** (attempt - 1), cap_s)


@dataclass(slots=True, kw_only=True)
class Backoff:
    """Delays for successive reconnect attempts; ``delay()`` returns None once the client gives up."""

    jitter: str = "none"
    base_s: float = BASE_S
    factor: float = FACTOR
    cap_s: float = CAP_S
    max_attempts: int = MAX_ATTEMPTS
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    _previous: float = 0.0

    def __post_init__(self) -> None:
        if self.jitter not in JITTERS:
            raise ValueError(f"jitter must be one of {', '.join(JITTERS)}, not {self.jitter!r}")

    def delay(self) -> float | None:
        """Count one more attempt and return how long to wait before it, or None to give up."""
        if self.attempt >= self.max_attempts:
            return None
        self.attempt += 1
        plain = seed_delay(self.attempt, self.base_s, self.factor, self.cap_s)
        if self.jitter == "none":
            wait = plain
        elif self.jitter == "full":
            wait = self.rng.uniform(0.0, plain)
        elif self.jitter == "equal":
            wait = plain / 2 + self.rng.uniform(0.0, plain / 2)
        else:
            previous = self._previous or self.base_s
            wait = min(self.cap_s, self.rng.uniform(self.base_s, previous * 3))
        self._previous = wait
        return wait

    def reset(self) -> None:
        """A connection succeeded: the next failure starts again at attempt 1."""
        self.attempt = 0
        self._previous = 0.0

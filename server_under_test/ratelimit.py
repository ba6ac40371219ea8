"""A per-connection token bucket, plus the count of refusals that turns a flood into a 1008 close."""

from __future__ import annotations

import time
from collections import deque


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; every client frame takes one. A rate of 0 disables it."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._tokens = self._burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        if self._rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FloodDetector:
    """True once ``limit`` refusals fall within ``window_s`` seconds (0 disables the close)."""

    __slots__ = ("_limit", "_refusals", "_window")

    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window = window_s
        self._refusals: deque[float] = deque()

    def refused(self) -> bool:
        if self._limit <= 0:
            return False
        now = time.monotonic()
        self._refusals.append(now)
        while self._refusals and now - self._refusals[0] > self._window:
            self._refusals.popleft()
        return len(self._refusals) >= self._limit

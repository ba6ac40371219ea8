"""The batched fan-out's window between two flushes of a channel, adapted to the load.

Fan-out costs a ``write`` per subscriber per frame (on loopback, the kernel's TCP work for both ends
runs inside it: several µs). At a fixed window, frames per second grow with busy channels and their
members until the event loop does little else, and every client pays a wake-up and a ``read`` per
frame too. So the window follows the cost: every ``PERIOD_S`` the share of the loop's time spent
writing fan-out frames is compared with ``busy_target`` and the window is scaled by the square root
of their ratio (frames per second go as 1 / window, so the ratio is the correction; the root damps
noise), between the configured minimum and maximum. Light load keeps the minimum (least latency);
heavy load lengthens the window, so batches grow instead of frames, and latency grows by at most the
maximum. With no maximum (0) the window is fixed.
"""

from __future__ import annotations

import math
import time
from typing import Final

PERIOD_S: Final = 0.1


class Pacing:
    """The current window (``window_s``), fed the time each flush spent writing (``spent``)."""

    __slots__ = ("_busy", "_since", "busy_target", "max_s", "min_s", "window_s")

    def __init__(self, window_ms: float, max_window_ms: float = 0.0, busy_target: float = 0.25) -> None:
        self.min_s = window_ms / 1000
        self.max_s = max(self.min_s, max_window_ms / 1000)
        self.busy_target = busy_target
        self.window_s = self.min_s
        self._busy = 0.0
        self._since = time.perf_counter()

    @property
    def adaptive(self) -> bool:
        return self.max_s > self.min_s and self.busy_target > 0

    def spent(self, seconds: float, now: float) -> None:
        """A flush took ``seconds`` of writing, ending at ``now`` (``time.perf_counter()``)."""
        self._busy += seconds
        elapsed = now - self._since
        if elapsed < PERIOD_S or not self.adaptive:
            return
        share = self._busy / elapsed
        scaled = self.window_s * math.sqrt(share / self.busy_target)
        self.window_s = min(self.max_s, max(self.min_s, scaled))
        self._busy = 0.0
        self._since = now

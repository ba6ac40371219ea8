"""Live progress of a run on the terminal: elapsed and remaining time, users, rates, fan-out p99.

On a terminal it is one rich line redrawn in place; otherwise (CI logs, pipes) a plain line every
``PLAIN_EVERY_S`` seconds.
"""

from __future__ import annotations

import time
from typing import Any, Final

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bench.report.htmlkit import fmt

PLAIN_EVERY_S: Final = 5.0


class RunProgress:
    """Shows the latest time-series point against the planned duration."""

    def __init__(self, console: Console, title: str, total_s: float, *, enabled: bool = True) -> None:
        self.console = console
        self.title = title
        self.total_s = total_s
        self.enabled = enabled
        self.point: dict[str, Any] = {}
        self._started = time.monotonic()
        self._live: Live | None = None
        self._last_plain = 0.0

    def __enter__(self) -> RunProgress:
        self._started = time.monotonic()
        if self.enabled and self.console.is_terminal:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def update(self, point: dict[str, Any] | None = None) -> None:
        if point:
            self.point = point
        if self._live is not None:
            self._live.update(self._render())
        elif self.enabled and time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            self.console.print(self.status_line(), highlight=False, soft_wrap=True)  # one line per update in logs

    def note(self, message: str) -> None:
        """An event worth a line of its own (a server restart, a failure)."""
        if self.enabled:
            self.console.print(f"[{self.elapsed:5.1f}s] {message}", highlight=False, soft_wrap=True)

    def status_line(self) -> str:
        p = self.point
        remaining = self.total_s - self.elapsed
        left = f"{remaining:.0f}s left" if remaining > 0 else "stopping, draining"
        parts = [f"{self.elapsed:4.0f}s / {self.total_s:.0f}s ({left})"]
        for key, label in (("users", "users"), ("connections", "conns")):
            if key in p:
                parts.append(f"{label} {fmt(p[key])}")
        for key, label in (("published_per_s", "pub/s"), ("delivered_per_s", "deliv/s")):
            if key in p:
                parts.append(f"{label} {fmt(float(p[key]))}")
        if p.get("fanout_p99_ms"):  # 0 in a second without fan-out (subscribe, infinite_scroll): nothing measured
            parts.append(f"fan-out p99 {fmt(float(p['fanout_p99_ms']))} ms")
        if "errors" in p:
            parts.append(f"errors {fmt(p['errors'])}")
        if p.get("cpu_percent") is not None:
            parts.append(f"cpu {fmt(float(p['cpu_percent']))}%")
        return " · ".join(parts)

    def _render(self) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            Text(self.title, style="bold"),
            ProgressBar(total=max(self.total_s, 1e-9), completed=min(self.elapsed, self.total_s), width=30),
            Text(self.status_line()),
        )
        return grid

"""Live progress when stdout is a log file, not a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from bench.report.progress import RunProgress

POINT = {"users": 510, "connections": 510, "published_per_s": 200, "delivered_per_s": 10_000, "errors": 0,
         "fanout_p99_ms": 12.5, "cpu_percent": 35.0}  # fmt: skip


def _printed(point: dict[str, float]) -> str:
    out = io.StringIO()
    with RunProgress(Console(file=out, width=80), "publish · default", 40) as progress:
        progress.update(point)
        progress.note("restarting the server (reconnect storm), a note long enough to need more than eighty columns")
    return out.getvalue()


def test_each_update_is_one_line_in_a_log_however_narrow() -> None:
    status, note = _printed(POINT).splitlines()
    assert "fan-out p99 12.5 ms" in status and status.endswith("cpu 35%")
    assert note.endswith("more than eighty columns")


def test_no_fan_out_figure_where_nothing_fans_out() -> None:
    assert "fan-out" not in _printed({**POINT, "fanout_p99_ms": 0.0})

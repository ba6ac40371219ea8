"""Fuzz: hostile frames, HTTP requests and handshakes hit every shipped preset while a canary group (a
publisher and three subscribers) must lose nothing and keep its p99 bounded (``server_under_test.soak``;
the long run is ``python -m server_under_test.soak --seconds 120``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server_under_test.config import list_presets
from server_under_test.soak import Target, healthy, soak
from tests.utils import TIMEOUT, start_server

SECONDS = 4.0
P99_MS = 50 * TIMEOUT  # 250 ms at the default timeout unit; the canary sees single-digit ms when unloaded


@pytest.mark.parametrize("preset", list_presets())
def test_hostile_traffic_loses_no_canary_message(preset: str, tmp_path: Path) -> None:
    with start_server(preset, f"history_path={tmp_path / 'fuzz.sqlite3'}") as server:
        target = Target("127.0.0.1", server.port)
        report, attacks = soak(target, SECONDS, seed=sum(map(ord, preset)))
        assert attacks > 50
        assert report.sent > 50 and report.missing == 0 and report.duplicated == 0, report
        assert report.p99_ms < P99_MS, report.p99_ms
        assert healthy(target)
        assert server.stop() == 0
        assert "Traceback" not in server.log_text()

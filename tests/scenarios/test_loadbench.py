"""The receive-rate benchmark runs end to end (a smoke test: tiny rate, both clients)."""

from __future__ import annotations

import pytest

from scenarios.loadbench import main


def test_both_clients_receive_the_offered_rate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--users", "2", "--batch", "5", "--rates", "400", "--step-seconds", "1.5"]) == 0
    out = capsys.readouterr().out
    for client in ("ours", "websocket-client"):
        [line] = [line for line in out.splitlines() if line.strip().startswith(client) and "target" in line]
        received = float(line.split("received")[1].split("/s")[0])
        assert received >= 0.9 * 400, line
    assert "ratio ours / websocket-client" in out

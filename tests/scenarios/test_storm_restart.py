"""Storm, restart mode: the test plays the orchestrator and restarts the server (durable history)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.scenarios.locust_run import LocustRun, run_scenario
from tests.server_process import start_server


def test_users_come_back_after_a_server_restart_and_catch_up(tmp_path: Path) -> None:
    history = f"history_path={tmp_path / 'history.sqlite3'}"
    with start_server("durable", history) as first:
        port, url = first.port, first.url
        outcome: dict[str, LocustRun] = {}
        args = ("--channels", "1", "--subscribers-per-channel", "8", "--publishers", "1", "--rate", "20",
                "--storm-at", "2", "--storm-mode", "restart")  # fmt: skip

        def drive() -> None:
            outcome["run"] = run_scenario("reconnect_storm", url, users=9, seconds=7, args=args)

        load = threading.Thread(target=drive)
        load.start()
        time.sleep(2.5)  # users connected and published for a while; now the orchestrator restarts the server
        first.stop()
    with start_server("durable", history, port=port):
        load.join(60)
    result = outcome["run"].result
    storm = result["storm"]
    assert storm["users"] == 9 and storm["gave_up"] == 0
    assert storm["back_100_s"] is not None and storm["back_100_s"] < 6
    assert set(result["errors"]) <= {"closed_1012", "refused", "reset", "eof"}
    throughput = result["throughput"]
    assert throughput["lost"] == 0 and throughput["duplicated"] == 0
    assert throughput["delivered"] == throughput["expected_deliveries"] > 0

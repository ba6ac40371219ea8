"""Storm, restart mode: the test plays the orchestrator and restarts the server between two runs of it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.utils import LocustRun, run_scenario, start_server

USERS = 9  # 8 subscribers and 1 publisher on one channel


def _storm_across_restart(preset: str, *sets: str) -> dict[str, Any]:
    with start_server(preset, *sets) as first:
        port, url = first.port, first.url
        outcome: dict[str, LocustRun] = {}
        args = ("--channels", "1", "--subscribers-per-channel", "8", "--publishers", "1", "--rate", "20",
                "--storm-at", "2", "--storm-mode", "restart")  # fmt: skip

        def drive() -> None:
            outcome["run"] = run_scenario("reconnect_storm", url, users=USERS, seconds=9, args=args)

        load = threading.Thread(target=drive)
        load.start()
        time.sleep(2.5)  # users connected and published for a while; now the orchestrator restarts the server
        first.stop()
    with start_server(preset, *sets, port=port):
        load.join(60)
    return outcome["run"].result


def test_durable_history_everyone_comes_back_and_catches_up(tmp_path: Path) -> None:
    result = _storm_across_restart("durable", f"history_path={tmp_path / 'history.sqlite3'}")
    storm = result["storm"]
    assert storm["users"] == USERS and storm["gave_up"] == 0
    assert storm["back_100_s"] is not None and storm["back_100_s"] < 6
    assert set(result["errors"]) <= {"closed_1012", "refused", "reset", "eof"}
    throughput = result["throughput"]
    assert throughput["lost"] == 0 and throughput["duplicated"] == 0 and throughput["history_resets"] == 0
    assert throughput["delivered"] == throughput["expected_deliveries"] > 0


@pytest.mark.parametrize("preset", ["default"])
def test_memory_history_is_a_new_id_epoch_not_garbage(preset: str) -> None:
    result = _storm_across_restart(preset)
    throughput = result["throughput"]
    assert throughput["history_resets"] == USERS, (throughput, result["errors"], result["storm"])
    assert throughput["duplicated"] == 0 and throughput["reordered"] == 0
    assert 0 < throughput["delivered"] <= throughput["expected_deliveries"]
    assert throughput["lost"] == throughput["expected_deliveries"] - throughput["delivered"]

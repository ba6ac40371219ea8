"""Integrity against a server that only delivers the payload (tests/utils/seedish.py): no lastMessageId,
global string ids, no clientMsgId echo, every delivery delayed 20-60 ms (reordered). Real Locust runs."""

from __future__ import annotations

from pathlib import Path

from tests.utils import bench, read_result, run_dirs, run_scenario
from tests.utils.seedish import Faults, seedish_server

LOAD = ("--channels", "1", "--subscribers-per-channel", "3", "--publishers", "1", "--rate", "20", "--warmup", "1")
SEED = ("--protocol", "seed", "--auth", "none")


def test_a_clean_run_by_send_times_loses_nothing(tmp_path: Path) -> None:
    with seedish_server() as url:
        proc = bench("run", "publish", "--target", url, "--protocol", "seed", "--auth", "none", "-t", "5",
                     "--param", "channels=2", "--param", "subscribers_per_channel=3", "--param", "publishers=2",
                     "--param", "rate=50", "-r", "50", "--out", str(tmp_path), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = read_result(run_dirs(tmp_path)[0])
    throughput = result["throughput"]
    assert result["integrity"]["method"] == "send_times" and result["protocol"] == "seed"
    assert result["target"]["protocol"] == "seed" and result["target"]["ws_path"] == "/ws"
    assert (throughput["lost"], throughput["duplicated"]) == (0, 0)
    assert throughput["delivered"] == throughput["expected_deliveries"] > 100
    assert throughput["reordered"] > 0  # 20 ms apart, delayed 20-60 ms: reordered, and none taken for lost
    assert result["latency_ms"]["fanout"]["count"] > 0


def test_k_dropped_deliveries_are_exactly_k_lost() -> None:
    faults = Faults(drop={20, 25, 30})
    with seedish_server(faults) as url:
        result = run_scenario("publish", url.removesuffix("/ws"), users=4, seconds=5, args=(*LOAD, *SEED)).result
    throughput = result["throughput"]
    assert faults.hit == 3
    assert (throughput["lost"], throughput["duplicated"]) == (3, 0)
    assert throughput["delivered"] == throughput["expected_deliveries"] - 3
    [lossy] = throughput["lossy_windows"]
    assert lossy["method"] == "send_times" and lossy["expected"] == lossy["delivered"] + 3


def test_k_duplicated_deliveries_are_exactly_k_duplicates() -> None:
    faults = Faults(duplicate={20, 25, 30})
    with seedish_server(faults) as url:
        result = run_scenario("publish", url.removesuffix("/ws"), users=4, seconds=5, args=(*LOAD, *SEED)).result
    throughput = result["throughput"]
    assert faults.hit == 3
    assert (throughput["lost"], throughput["duplicated"]) == (0, 3)
    assert throughput["delivered"] == throughput["expected_deliveries"]

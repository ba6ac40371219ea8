"""Integrity counts are exact when a relay drops, duplicates and reorders known messages of one user."""

from __future__ import annotations

from tests.utils import run_scenario, start_server
from tests.utils.relay import Faults, relay

VICTIM = "u0-s0"  # the first subscriber of a local run


def test_one_loss_one_duplicate_one_reorder_are_counted_exactly() -> None:
    faults = Faults(drop={3}, duplicate={6}, hold={10})
    with start_server("default") as server, relay(server.url, VICTIM, faults) as url:
        result = run_scenario(
            "publish", url, users=4, seconds=4,
            args=("--channels", "1", "--subscribers-per-channel", "3", "--publishers", "1", "--rate", "20"),
        ).result  # fmt: skip
    assert faults.seen > 11
    throughput = result["throughput"]
    assert (throughput["lost"], throughput["duplicated"], throughput["reordered"]) == (1, 1, 1)
    assert throughput["delivered"] == throughput["expected_deliveries"] - 1
    assert throughput["expected_deliveries"] >= 3 * 11
    [lossy] = throughput["lossy_windows"]
    assert lossy["gaps"] == 1 and lossy["expected"] == lossy["delivered"] + 1


def test_clean_relay_changes_nothing() -> None:
    with start_server("default") as server, relay(server.url, VICTIM, Faults()) as url:
        result = run_scenario(
            "publish", url, users=4, seconds=3,
            args=("--channels", "1", "--subscribers-per-channel", "3", "--publishers", "1", "--rate", "20"),
        ).result  # fmt: skip
    throughput = result["throughput"]
    assert (throughput["lost"], throughput["duplicated"], throughput["reordered"]) == (0, 0, 0)
    assert throughput["delivered"] == throughput["expected_deliveries"] > 0

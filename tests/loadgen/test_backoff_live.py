"""Reconnect attempts against a target that refuses connections follow the seed's schedule."""

from __future__ import annotations

from bench.harness.locust import free_port
from tests.utils import run_scenario


def test_attempts_at_0_1_and_2_5_seconds_within_4_seconds() -> None:
    # attempt 1 at once, then waits of 1 s and 1.5 s; the fourth would come at 4.75 s
    url = f"http://127.0.0.1:{free_port()}"
    result = run_scenario("subscribe", url, users=3, seconds=4, args=("--auth", "secret", "--jwt-secret", "s")).result
    assert result["errors"] == {"refused": 9}
    assert result["connections"]["attempts"] == 9
    assert result["connections"]["failed"] == 9
    # The per-second points tick on whole wall-clock seconds and the first may span up to 1.5 s, so
    # attempts 1 and 2 can share a point; what holds on any clock is that they are spread out.
    per_second = [point["connect_attempts_per_s"] for point in result["timeseries"]]
    assert sum(per_second) == 9 and max(per_second) <= 6

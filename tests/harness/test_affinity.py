"""CPU pinning: the option's grammar, and a server and a Locust process that really run on their cores."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.core.exceptions import UsageError
from bench.harness import affinity
from bench.harness.locust import AuthSpec, LoadSpec, LocustProcess
from tests.utils import TIMEOUT, start_server

CORES = affinity.available()


def test_the_grammar_of_core_lists() -> None:
    first = CORES[0]
    assert affinity.parse_cpus(None) == () and affinity.parse_cpus("") == ()
    assert affinity.parse_cpus(f"{first}") == (first,)
    assert affinity.parse_cpus(f"{first}-{first}") == (first,)
    for bad in ("x", "1-", "-1", "3-1", "1;2"):
        with pytest.raises(UsageError, match="--cpus"):
            affinity.parse_cpus(bad)
    with pytest.raises(UsageError, match="no core 4096"):
        affinity.parse_cpus("4096")


@pytest.mark.skipif(len(CORES) < 2, reason="pinning apart needs two cores")
def test_server_and_locust_run_on_the_cores_they_were_given(tmp_path: Path) -> None:
    server_core, loadgen_core = CORES[0], CORES[1]
    with start_server("default", cpus=(server_core,)) as server:
        assert server.pid is not None and os.sched_getaffinity(server.pid) == {server_core}
        load = LoadSpec("subscribe", 2, 2, 3, cpus=(loadgen_core,))
        locust = LocustProcess(load, AuthSpec(), server.url, tmp_path)
        locust.start()
        try:
            assert locust.pid is not None and os.sched_getaffinity(locust.pid) == {loadgen_core}
            deadline = time.monotonic() + 6 * TIMEOUT
            while locust.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            locust.stop()
        metrics = locust.metrics()
        assert metrics is not None and metrics["connections"]["peak"] == 2

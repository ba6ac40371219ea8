"""The client-efficiency and memory parts of ``bench perf``, run small against real servers."""

from __future__ import annotations

import asyncio
import resource

import pytest

from bench.core.exceptions import UsageError
from bench.harness import clientbench, memcheck, perf


@pytest.mark.parametrize("client", sorted(clientbench.CLIENTS))
def test_each_client_receives_the_offered_rate_and_its_cpu_is_measured(client: str) -> None:
    [step] = asyncio.run(clientbench.measure(client, 2, 5, [400], 1.5))
    assert step.rate == 400
    assert 0.9 * 400 <= step.received_per_s <= 1.2 * 400
    assert 0 < step.cpu_percent < 400 and step.per_cpu_second > step.received_per_s
    assert clientbench.best_below([step], 100.0) in (step, None)


def test_memcheck_measures_kilobytes_per_idle_connection() -> None:
    result = memcheck.measure("default", conns=300, warm=50, per_channel=50)
    assert result.connections == 300 and result.server_rss_after > result.server_rss_before
    # an idle subscribed connection costs the bundled server about 17 KiB (README); allow a wide band
    assert 2 * 1024 < result.server_bytes_per_conn < 200 * 1024
    assert result.client_bytes_per_conn >= 0  # the client side is for scale only; small N may not move its RSS


def test_memcheck_refuses_more_connections_than_file_descriptors() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard > 10 * memcheck.MAX_CONNS:
        pytest.skip("no finite hard limit to exceed")
    with pytest.raises(UsageError, match="file descriptors"):
        memcheck.raise_open_file_limit(hard + 1)


@pytest.mark.parametrize(("loadgen", "processes"), [((1,), 1), ((1, 2, 3), 2), ((), 2)])
def test_perf_runs_at_most_one_locust_process_per_pinned_core(loadgen: tuple[int, ...], processes: int) -> None:
    """Two processes pinned to one core take turns on it: the plan's 2 become 1 there (unpinned: kept)."""
    assert perf.fit_processes(perf.FULL, perf.Pins(server=(0,), loadgen=loadgen)).processes == processes

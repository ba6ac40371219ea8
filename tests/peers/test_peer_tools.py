"""The quick load check and the memory check, run small against a real peer."""

from __future__ import annotations

import resource

import pytest
from peerkit import PEER_NAMES

from bench.core.exceptions import UsageError
from server_under_test.peers import PEERS, memcheck, quickbench


def available_peer() -> str:
    for name in PEER_NAMES:
        if PEERS[name].missing() is None:
            return f"peer:{name}"
    pytest.skip("no peer server is installed")


def test_quickbench_counts_every_delivery_in_the_window() -> None:
    plan = quickbench.LoadPlan(channels=2, subscribers=3, rate=20, duration=1.0, warmup=0.33, drain=0.5)
    result = quickbench.measure(available_peer(), plan, procs=2)
    assert result.published == 20  # 10 per channel, intended inside the 1 s window
    assert result.expected == 60 and result.delivered == 60 and result.missing == 0
    assert result.latency_ms["count"] == 60 and 0 < result.latency_ms["p99"] < 1000
    assert "delivered/s" in quickbench.render([result], plan)


def test_memcheck_reports_bytes_per_connection() -> None:
    result = memcheck.measure(available_peer(), conns=40, warm=10, per_channel=10)
    assert result.connections == 40 and result.server_rss_after > 0
    assert -1e6 < result.server_bytes_per_conn < 1e7  # small N: only the plumbing is checked here
    assert "per connection" in memcheck.render(result)


def test_memcheck_refuses_more_connections_than_file_descriptors() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard > 10 * memcheck.MAX_CONNS:
        pytest.skip("no finite hard limit to exceed")
    with pytest.raises(UsageError, match="file descriptors"):
        memcheck.raise_open_file_limit(hard + 1)

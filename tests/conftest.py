"""Shared fixtures: the timeout unit and the real server started on port 0 (see tests/utils)."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator

import pytest

from tests.utils import SERVER_MODES, TIMEOUT, RunningServer, needs_redis, start_server

__all__ = ["TIMEOUT", "server", "single_or_cluster"]

# A shell without job control starts background jobs with SIGINT ignored, and a child inherits that across
# exec, so the tests that press Ctrl-C on `bench` (test_cli_run, test_cli_compare_capacity, the distributed
# runs) would see it ignored when pytest runs in the background. Handled here, it is reset to the default
# in every child, which is what a terminal's Ctrl-C meets.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """The server with the default preset, one per test module."""
    with start_server("default") as running:
        yield running


@pytest.fixture(scope="module", params=[pytest.param("single"), pytest.param("cluster", marks=needs_redis)])
def single_or_cluster(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """The default preset in one process, then as a 2-worker cluster whose clients alternate workers."""
    with start_server(*SERVER_MODES[request.param]) as running:
        running.placement = itertools.count()
        yield running

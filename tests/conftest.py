"""Shared fixtures: the timeout unit and the real server started on port 0 (see tests/utils)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.utils import SERVER_MODES, TIMEOUT, RunningServer, needs_redis, start_server

__all__ = ["TIMEOUT", "server", "single_or_cluster"]


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

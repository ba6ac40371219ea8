"""Shared fixtures: the timeout unit and the real server started on port 0 (see tests/utils)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils import TIMEOUT, RunningServer, start_server

__all__ = ["TIMEOUT", "server"]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """The server with the default preset, one per test module."""
    with start_server("default") as running:
        yield running

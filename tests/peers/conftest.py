"""The peer servers' fixture: each peer started for real on port 0, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peerkit import PEER_NAMES, start_peer

from server_under_test.peers.process import ServerProcess


@pytest.fixture(scope="module", params=PEER_NAMES)
def peer(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """One running peer per module and peer name."""
    server = start_peer(request.param)
    yield server
    server.stop()

"""The peer servers' fixture: each peer (and the bundled reference) started for real on port 0, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils import RunningServer
from tests.utils.peers import PEER_NAMES, REFERENCE, start_peer


@pytest.fixture(scope="module", params=[*PEER_NAMES, REFERENCE])
def peer(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """One running server per module: each peer, and the bundled ``default`` as the reference they must match."""
    server = start_peer(request.param)
    yield server
    server.stop()

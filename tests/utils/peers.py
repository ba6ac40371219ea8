"""Helpers for the peer tests: start a peer on port 0 (or skip when missing), small HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import tempfile
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Final

import pytest
from websockets.asyncio.client import ClientConnection, connect

from bench.core import protocol
from bench.harness.servers import ServerSpec
from server_under_test.peers import PEER_PREFIX, PEERS
from server_under_test.peers.settings import PeerSettings
from tests.utils import TIMEOUT, RunningServer, basic_auth, http_json

PEER_NAMES: Final = sorted(PEERS)
REFERENCE: Final = "default"  # the bundled preset the peers are checked against, test for test


def start_peer(name: str, settings: PeerSettings | None = None) -> RunningServer:
    """Start ``peer:name`` (or the bundled REFERENCE) on port 0 through the tool's launcher; skip with the
    install hint if a peer is missing. The caller stops it."""
    if name == REFERENCE:
        spec = ServerSpec(config=REFERENCE)
    else:
        problem = PEERS[name].missing()
        if problem is not None:
            pytest.skip(f"peer {name} not installed: {problem}")
        spec = ServerSpec(config=PEER_PREFIX + name, peer_settings=settings)
    log = Path(tempfile.mkdtemp(prefix="chat-peer-")) / "server.log"
    server = RunningServer(spec, log, start_timeout_s=4 * TIMEOUT)
    server.start()
    return server


def token_for(server: RunningServer, user: str) -> str:
    status, body = http_json(server.url + "/auth/token", basic_auth(user))
    assert status == 200, body
    return str(body["token"])


async def open_client(server: RunningServer, user: str) -> ClientConnection:
    return await connect(f"{server.ws_url}?token={token_for(server, user)}", open_timeout=TIMEOUT)


async def send(ws: ClientConnection, **msg: Any) -> None:
    await ws.send(json.dumps(msg))


_PENDING: weakref.WeakKeyDictionary[ClientConnection, deque[dict[str, Any]]] = weakref.WeakKeyDictionary()


async def recv(ws: ClientConnection, *, presence: bool = False) -> dict[str, Any]:
    """The next message, one at a time also from batched (array) frames; USER_STATUS skipped unless ``presence``."""
    pending = _PENDING.setdefault(ws, deque())
    while True:
        if not pending:
            pending.extend(protocol.decode_frame(await asyncio.wait_for(ws.recv(), TIMEOUT)))
        obj = pending.popleft()
        if presence or obj["type"] != "USER_STATUS":
            return obj


async def next_status(ws: ClientConnection, user_id: str) -> str:
    """The status in the next USER_STATUS about ``user_id`` (presence events about others are skipped)."""
    while True:
        msg = await recv(ws, presence=True)
        assert msg["type"] == "USER_STATUS", msg
        if msg["userId"] == user_id:
            return str(msg["status"])


async def subscribe(ws: ClientConnection, channel: str) -> dict[str, Any]:
    await send(ws, type="SUBSCRIBE", channelId=channel, timestamp=0)
    reply = await recv(ws)
    assert reply["type"] == "SUBSCRIBED" and reply["channelId"] == channel, reply
    return reply

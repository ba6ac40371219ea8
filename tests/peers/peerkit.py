"""Helpers for the peer tests: start a peer on port 0 (or skip when missing), small HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from server_under_test.peers import PEERS
from server_under_test.peers.process import ServerProcess
from server_under_test.peers.settings import PeerSettings

TIMEOUT = 5.0 * float(os.environ.get("BENCH_TEST_TIMEOUT_FACTOR", "1"))
PEER_NAMES = sorted(PEERS)


def start_peer(name: str) -> ServerProcess:
    """Start ``peer:name`` on port 0, or skip with the install hint when its runtime is missing."""
    peer = PEERS[name]
    problem = peer.missing()
    if problem is not None:
        pytest.skip(f"peer {name} not installed: {problem}")
    argv = peer.command(PeerSettings(port=0))
    return ServerProcess(argv, start_timeout=3 * TIMEOUT, stop_timeout=3 * TIMEOUT).start()


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """GET and decode JSON: (status, body), also for error statuses."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def basic(user: str, password: str = "bench") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def token_for(server: ServerProcess, user: str) -> str:
    status, body = http_get(server.url + "/auth/token", basic(user))
    assert status == 200, body
    return str(body["token"])


async def open_client(server: ServerProcess, user: str) -> ClientConnection:
    return await connect(f"{server.ws_url}/ws?token={token_for(server, user)}", open_timeout=TIMEOUT)


async def send(ws: ClientConnection, **msg: Any) -> None:
    await ws.send(json.dumps(msg))


async def recv(ws: ClientConnection, *, presence: bool = False) -> dict[str, Any]:
    """The next message (the peers never batch); USER_STATUS events are skipped unless ``presence``."""
    while True:
        obj = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert isinstance(obj, dict), obj
        if presence or obj["type"] != "USER_STATUS":
            return obj


async def subscribe(ws: ClientConnection, channel: str) -> dict[str, Any]:
    await send(ws, type="SUBSCRIBE", channelId=channel, timestamp=0)
    reply = await recv(ws)
    assert reply["type"] == "SUBSCRIBED" and reply["channelId"] == channel, reply
    return reply

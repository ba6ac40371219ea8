"""Helpers for the peer tests: start a peer on port 0 (or skip when missing), small HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import selectors
import subprocess
import tempfile
import urllib.error
import urllib.request
import weakref
from collections import deque
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from bench.core import protocol
from server_under_test.peers import PEERS
from server_under_test.peers.settings import PeerSettings
from server_under_test.process import LISTENING, server_command

TIMEOUT = 5.0 * float(os.environ.get("BENCH_TEST_TIMEOUT_FACTOR", "1"))
PEER_NAMES = sorted(PEERS)
REFERENCE = "default"  # the bundled preset the peers are checked against, test for test


class ServerProcess:
    """A server started from an argv (a peer with any settings, or the bundled reference); first line read back."""

    def __init__(self, argv: list[str]) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(3 * TIMEOUT)
        self.first_line = self.proc.stdout.readline().strip() if ready else ""
        match = LISTENING.search(self.first_line)
        if match is None:
            self.stop()
            raise AssertionError(f"{argv} did not start: {self.first_line!r}")
        self.url = match[1]
        self.ws_url = self.url.replace("http", "ws", 1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(3 * TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()
        return code

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def start_peer(name: str, settings: PeerSettings | None = None) -> ServerProcess:
    """Start ``peer:name`` (or the bundled REFERENCE) on port 0; skip with the install hint if a peer is missing."""
    if name == REFERENCE:
        return ServerProcess(server_command(REFERENCE, ()))
    peer = PEERS[name]
    problem = peer.missing()
    if problem is not None:
        pytest.skip(f"peer {name} not installed: {problem}")
    return ServerProcess(peer.command(settings or PeerSettings(port=0)))


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

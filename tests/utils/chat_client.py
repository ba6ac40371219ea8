"""Test helpers for the chat protocol over real sockets: an asyncio websockets client, a reader that
stalls on purpose, and a /metrics reader."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.core import protocol
from tests.utils import TIMEOUT, RunningServer, fetch_token, http_get

PLACEMENT_TRIES = 60  # SO_REUSEPORT spreads by hash: a connection lands on a given one of 2 workers at 1/2


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ChatClient:
    """One connection: send protocol messages, read frames (batched or not) message by message."""

    def __init__(self, ws: ClientConnection, user: str) -> None:
        self.ws = ws
        self.user = user
        self.frames = 0
        self._buffer: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message (a batched frame is split into its messages)."""
        while not self._buffer:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            self.frames += 1
            self._buffer.extend(protocol.decode_frame(frame))
        return self._buffer.pop(0)

    async def expect(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Skip messages until one of type ``kind`` whose fields match; fail on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            message = await self.recv(max(remaining, 0.001))
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message

    async def drain(self, quiet: float = 0.2) -> list[dict[str, Any]]:
        """Every message that arrives until ``quiet`` seconds pass without one."""
        received: list[dict[str, Any]] = []
        while True:
            try:
                received.append(await self.recv(quiet))
            except TimeoutError:
                return received

    async def subscribe(self, channel: str) -> dict[str, Any]:
        await self.send(protocol.subscribe(channel, now_ms()))
        return await self.expect(protocol.SUBSCRIBED, channelId=channel)

    async def publish(self, channel: str, content: str, client_msg_id: str = "", **extra: Any) -> None:
        await self.send({**protocol.publish(channel, content, now_ms(), client_msg_id or content), **extra})

    async def error(self, message: dict[str, Any] | str | bytes) -> dict[str, Any]:
        """Send something (a message, or raw text) and return the ERROR it earns."""
        if isinstance(message, dict):
            await self.send(message)
        else:
            await self.ws.send(message)
        return await self.expect(protocol.ERROR)


@asynccontextmanager
async def chat_client(
    server: RunningServer,
    user: str,
    *,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **connect_options: Any,
) -> AsyncIterator[ChatClient]:
    """A connected, authenticated client for the ``async with`` block."""
    ctx = ssl_context or server.ssl_context
    token = token or await asyncio.to_thread(fetch_token, server.url, user, ssl_context=ctx)
    url = f"{server.ws_url}?token={token}"
    want = next(server.placement) % server.workers if server.workers > 1 else None
    for _ in range(PLACEMENT_TRIES):
        ws = await connect(url, ssl=ctx, open_timeout=TIMEOUT, max_size=None, **connect_options)
        if want is None or worker_of(ws) == want:
            break
        await ws.close()
    else:
        raise AssertionError(f"no connection landed on worker {want} in {PLACEMENT_TRIES} tries")
    async with ws:
        yield ChatClient(ws, user)


def worker_of(ws: ClientConnection) -> int | None:
    """The cluster worker that took the connection (its upgrade's X-Chat-Worker), None for one process."""
    value = ws.response.headers.get("X-Chat-Worker") if ws.response is not None else None
    return None if value is None else int(value)


async def chat_messages(client: ChatClient, count: int) -> list[dict[str, object]]:
    """The stored messages of the next ``count`` CHAT_MESSAGE events (other messages are skipped)."""
    received: list[dict[str, object]] = []
    while len(received) < count:
        event = await client.recv()
        if event["type"] == protocol.CHAT_MESSAGE:
            received.append(event["message"])
    return received


def metric(server: RunningServer, name: str) -> float:
    """One sample from ``GET /metrics``."""
    text = http_get(f"{server.url}/metrics")[1].decode()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(f"{name} ")))


def stalled_reader(server: RunningServer, user: str, channel: str) -> socket.socket:
    """A raw WebSocket client with a tiny receive buffer that subscribes and then never reads again."""
    token = fetch_token(server.url, user)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert b" 101 " in sock.recv(1024)
    payload = protocol.orjson_dumps(protocol.subscribe(channel, now_ms()))
    sock.sendall(bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
    return sock

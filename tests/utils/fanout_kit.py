"""Helpers for the fan-out tests: clients that negotiate array frames, bursts that arrive in one TCP
segment (so that the server handles them in one event-loop pass), and raw frame reading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from websockets.asyncio.client import connect

from bench.core import protocol
from tests.utils import TIMEOUT, RunningServer, fetch_token
from tests.utils.chat_client import ChatClient, chat_client, now_ms

BATCH_SUBPROTOCOL: Final = "chatbench.batch"


@asynccontextmanager
async def batch_client(server: RunningServer, user: str, via: str) -> AsyncIterator[ChatClient]:
    """A client that asks for array frames ``via`` the ``subprotocol`` or the ``query`` (``batch=1``)."""
    if via == "subprotocol":
        async with chat_client(server, user, subprotocols=[BATCH_SUBPROTOCOL]) as client:
            assert client.ws.subprotocol == BATCH_SUBPROTOCOL
            yield client
        return
    assert via == "query", via
    token = await asyncio.to_thread(fetch_token, server.url, user)
    async with connect(f"{server.ws_url}?token={token}&batch=1", open_timeout=TIMEOUT, max_size=None) as ws:
        yield ChatClient(ws, user)


async def burst(client: ChatClient, messages: list[dict[str, Any]]) -> None:
    """Send ``messages`` as frames concatenated into one transport write (one segment on loopback)."""
    sans_io = client.ws.protocol
    for message in messages:
        sans_io.send_text(json.dumps(message).encode())
    client.ws.transport.write(b"".join(sans_io.data_to_send()))
    await asyncio.sleep(0)


def publishes(channel: str, prefix: str, count: int) -> list[dict[str, Any]]:
    return [protocol.publish(channel, f"{prefix}{seq}", now_ms(), f"{prefix}{seq}") for seq in range(count)]


async def raw_frames(client: ChatClient, chat_messages: int) -> list[Any]:
    """Decoded frames as they came (an object or an array each) until ``chat_messages`` CHAT_MESSAGEs."""
    frames: list[Any] = []
    seen = 0
    while seen < chat_messages:
        frame = json.loads(await asyncio.wait_for(client.ws.recv(), TIMEOUT))
        frames.append(frame)
        seen += sum(message["type"] == protocol.CHAT_MESSAGE for message in messages_of(frame))
    return frames


def messages_of(frame: Any) -> list[dict[str, Any]]:
    return frame if isinstance(frame, list) else [frame]


def contents(frames: list[Any]) -> list[str]:
    """The contents of the CHAT_MESSAGEs in ``frames``, in order."""
    messages = [message for frame in frames for message in messages_of(frame)]
    return [m["message"]["content"] for m in messages if m["type"] == protocol.CHAT_MESSAGE]

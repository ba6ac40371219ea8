"""A reader that stops reading does not stall the others; it is dropped or disconnected, and counted."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Iterator

import pytest

from bench import protocol
from tests.server.chat_client import chat_client, now_ms
from tests.server.test_fanout_modes import chat_messages, metric
from tests.server_process import TIMEOUT, RunningServer, fetch_token, start_server

MESSAGES = 1000
WINDOW = 8
CONTENT = "z" * 8000  # 1000 x 8 kB = 8 MB for the stalled reader: past its 256 kB bound plus any kernel buffers


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


@pytest.fixture(
    scope="module",
    params=[("batched", "disconnect"), ("batched", "drop"), ("naive", "disconnect"), ("broadcast", "drop")],
    ids=lambda p: "-".join(p),
)
def bounded_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    fanout, policy = request.param
    with start_server(
        "default", f"fanout={fanout}", f"slow_consumer={policy}", "write_buffer_bytes=262144", "rate_limit_per_s=0"
    ) as running:
        yield running


def test_slow_consumer_does_not_stall_fast_ones(bounded_server: RunningServer) -> None:
    stalled = stalled_reader(bounded_server, "sloth", "slow")
    try:

        async def scenario() -> None:
            async with chat_client(bounded_server, "fast") as fast, chat_client(bounded_server, "writer") as writer:
                await fast.subscribe("slow")
                await writer.subscribe("slow")
                receiving = asyncio.create_task(chat_messages(fast, MESSAGES))
                echoed: list[dict[str, object]] = []
                for start in range(0, MESSAGES, WINDOW):  # a paced writer: at most WINDOW messages in flight
                    for seq in range(start, min(start + WINDOW, MESSAGES)):
                        await writer.publish("slow", CONTENT, client_msg_id=str(seq))
                    echoed += await asyncio.wait_for(chat_messages(writer, min(WINDOW, MESSAGES - start)), TIMEOUT)
                received = await asyncio.wait_for(receiving, TIMEOUT)
                assert [m["clientMsgId"] for m in echoed] == [str(seq) for seq in range(MESSAGES)]
                assert [m["clientMsgId"] for m in received] == [str(seq) for seq in range(MESSAGES)]

        asyncio.run(scenario())
    finally:
        stalled.close()
    assert metric(bounded_server, "chat_dropped_total") > 0
    disconnects = metric(bounded_server, "chat_slow_consumer_disconnects_total")
    assert disconnects == (1 if "slow_consumer=disconnect" in bounded_server.sets else 0)

"""A reader that stops reading does not stall the others; it is dropped or disconnected, and counted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.utils import TIMEOUT, RunningServer, start_server
from tests.utils.chat_client import chat_client, chat_messages, metric, stalled_reader

MESSAGES = 1000
WINDOW = 8
CONTENT = "z" * 8000  # 1000 x 8 kB = 8 MB for the stalled reader: past its 256 kB bound plus any kernel buffers


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

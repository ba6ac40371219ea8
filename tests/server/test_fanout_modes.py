"""Every fan-out design delivers the same messages; batching really batches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench.core import protocol
from tests.utils import RunningServer, start_server
from tests.utils.chat_client import ChatClient, chat_client, chat_messages, metric

PUBLISHERS = 3
PER_PUBLISHER = 25


@pytest.fixture(
    scope="module",
    params=[
        ("naive",),
        ("broadcast",),
        ("batched", "batch_window_ms=0"),
        ("batched", "batch_window_ms=5", "max_batch=8"),
        ("batched", "compression=true"),
    ],
    ids=["naive", "broadcast", "batched-loop", "batched-5ms", "batched-deflate"],
)
def mode_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    fanout, *sets = request.param
    with start_server("default", f"fanout={fanout}", *sets) as running:
        yield running


def test_every_mode_delivers_every_message_once_in_order(mode_server: RunningServer) -> None:
    total = PUBLISHERS * PER_PUBLISHER

    async def scenario() -> None:
        names = [f"pub{n}" for n in range(PUBLISHERS)] + ["lurker"]
        async with (
            chat_client(mode_server, names[0]) as p0,
            chat_client(mode_server, names[1]) as p1,
            chat_client(mode_server, names[2]) as p2,
            chat_client(mode_server, names[3]) as lurker,
        ):
            clients = [p0, p1, p2, lurker]
            compressed = "compression=true" in mode_server.sets
            assert all(bool(c.ws.protocol.extensions) == compressed for c in clients)
            for client in clients:
                await client.subscribe("modes")

            async def publish_all(client: ChatClient) -> None:
                for seq in range(PER_PUBLISHER):
                    await client.publish("modes", f"{client.user}#{seq}", client_msg_id=f"{client.user}:{seq}")

            receiving = [asyncio.create_task(chat_messages(c, total)) for c in clients]
            await asyncio.gather(*(publish_all(c) for c in clients[:PUBLISHERS]))
            views = await asyncio.gather(*receiving)
            expected = {f"pub{n}#{seq}" for n in range(PUBLISHERS) for seq in range(PER_PUBLISHER)}
            for view in views:
                contents = [str(m["content"]) for m in view]
                assert set(contents) == expected and len(contents) == total
                assert sorted(int(str(m["id"])) for m in view) == list(range(1, total + 1))
                for n in range(PUBLISHERS):
                    mine = [c for c in contents if c.startswith(f"pub{n}#")]
                    assert mine == [f"pub{n}#{seq}" for seq in range(PER_PUBLISHER)]
            if "fanout=naive" not in mode_server.sets:  # one writer per message: one global order
                assert all([m["id"] for m in view] == list(range(1, total + 1)) for view in views)

    asyncio.run(scenario())
    assert metric(mode_server, "chat_messages_in_total") >= total
    assert metric(mode_server, "chat_messages_out_total") >= total * 4


@pytest.fixture(scope="module")
def batching_server() -> Iterator[RunningServer]:
    with start_server("default", "fanout=batched", "batch_window_ms=30", "max_batch=50") as running:
        yield running


def test_batching_sends_fewer_frames_than_messages(batching_server: RunningServer) -> None:
    count = 200

    async def scenario() -> int:
        async with chat_client(batching_server, "burst") as sender, chat_client(batching_server, "reader") as reader:
            await sender.subscribe("burst")
            await reader.subscribe("burst")
            await reader.drain(0.1)
            frames_before = reader.frames
            for seq in range(count):
                await sender.publish("burst", f"b{seq}")
            received = await chat_messages(reader, count)
            assert [m["content"] for m in received] == [f"b{seq}" for seq in range(count)]
            return reader.frames - frames_before

    frames = asyncio.run(scenario())
    assert frames <= count // 4, frames
    batches = metric(batching_server, "chat_batches_total")
    assert 0 < batches < count
    assert metric(batching_server, "chat_frames_out_total") < metric(batching_server, "chat_messages_out_total")


def test_max_batch_flushes_before_the_window() -> None:
    window_s = 1.0
    with start_server("default", f"batch_window_ms={window_s * 1000}", "max_batch=50", "presence=false") as server:

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            async with chat_client(server, "full") as sender:
                await sender.subscribe("full")
                await sender.publish("full", "prime")  # the channel has just flushed: the window is running
                await sender.expect(protocol.CHAT_MESSAGE, timeout=2 * window_s)
                started = loop.time()
                for seq in range(50):
                    await sender.publish("full", f"f{seq}")
                batch = protocol.decode_frame(await asyncio.wait_for(sender.ws.recv(), window_s))
                assert loop.time() - started < window_s / 2
                assert [m["message"]["content"] for m in batch] == [f"f{seq}" for seq in range(50)]
                await sender.publish("full", "alone")
                late = protocol.decode_frame(await asyncio.wait_for(sender.ws.recv(), 2 * window_s))
                assert [m["message"]["content"] for m in late] == ["alone"]
                assert loop.time() - started >= window_s * 0.9

        asyncio.run(scenario())

"""Every fan-out design delivers the same messages, once and in order, to plain and array-negotiating clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.utils import RunningServer, start_server
from tests.utils.chat_client import ChatClient, chat_client, chat_messages, metric
from tests.utils.fanout_kit import batch_client

PUBLISHERS = 3
PER_PUBLISHER = 25


@pytest.fixture(
    scope="module",
    params=[
        ("naive",),
        ("broadcast",),
        ("batched", "batch_window_ms=0"),
        ("batched", "batch_window_ms=5", "max_batch=8"),
        ("batched", "coalesce_writes=false"),
        ("batched", "compression=true"),
    ],
    ids=["naive", "broadcast", "batched-pass", "batched-5ms", "batched-uncoalesced", "batched-deflate"],
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
            batch_client(mode_server, names[3], "subprotocol") as lurker,
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

"""The minimal end-to-end path: token, upgrade, subscribe, publish fan-out, health and metrics."""

from __future__ import annotations

import asyncio
import json

from bench.core import protocol
from tests.utils import RunningServer, http_get
from tests.utils.chat_client import chat_client


def test_banner_names_preset_and_address(server: RunningServer) -> None:
    assert server.banner.startswith("chat server listening on http://127.0.0.1:")
    assert server.banner.endswith("(preset default)")


def test_publish_reaches_every_subscriber_including_sender(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "alice") as alice, chat_client(server, "bob") as bob:
            await alice.subscribe("basics")
            await bob.subscribe("basics")
            await alice.publish("basics", "hi bob", client_msg_id="c-1")
            for client in (alice, bob):
                event = await client.expect(protocol.CHAT_MESSAGE)
                message = event["message"]
                assert event["channelId"] == "basics"
                assert message["senderId"] == "alice"
                assert message["content"] == "hi bob"
                assert message["clientMsgId"] == "c-1"
                assert message["id"] == 1
                assert isinstance(message["serverTimestamp"], int)

    asyncio.run(scenario())


def test_healthz_and_metrics(server: RunningServer) -> None:
    status, body = http_get(f"{server.url}/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    status, body = http_get(f"{server.url}/metrics")
    assert status == 200
    text = body.decode()
    for name in (
        "chat_connections",
        "chat_frames_in_total",
        "chat_frames_out_total",
        "chat_messages_in_total",
        "chat_messages_out_total",
        "chat_batches_total",
        "chat_dropped_total",
        "chat_slow_consumer_disconnects_total",
        "chat_rate_limited_total",
        "chat_auth_failures_total",
    ):
        assert f"\n{name} " in text, name

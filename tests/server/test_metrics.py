"""/metrics counts exactly what docs/PROTOCOL.md says it counts."""

from __future__ import annotations

import asyncio
import time

from bench.core import protocol
from tests.utils import TIMEOUT, start_server
from tests.utils.chat_client import chat_client, metric


def test_counters_and_gauges_follow_the_traffic() -> None:
    with start_server("broadcast", "presence=false") as server:

        async def scenario() -> None:
            async with (
                chat_client(server, "m1") as one,
                chat_client(server, "m2") as two,
                chat_client(server, "m3") as three,
            ):
                for client in (one, two, three):
                    await client.subscribe("counted")
                for n in range(5):
                    await one.publish("counted", f"n{n}")
                for client in (one, two, three):
                    for _ in range(5):
                        await client.expect(protocol.CHAT_MESSAGE)
                await two.error("not json")
                assert metric(server, "chat_connections") == 3
                assert metric(server, "chat_channels") == 1
                assert metric(server, "chat_subscriptions") == 3

        asyncio.run(scenario())
        deadline = time.monotonic() + TIMEOUT
        while metric(server, "chat_connections") and time.monotonic() < deadline:  # handlers finishing
            time.sleep(0.01)
        assert metric(server, "chat_connections_accepted_total") == 3
        assert metric(server, "chat_frames_in_total") == 3 + 5 + 1  # subscribes, publishes, the bad frame
        assert metric(server, "chat_messages_in_total") == 5
        assert metric(server, "chat_messages_out_total") == 15
        assert metric(server, "chat_frames_out_total") == 3 + 15 + 1  # SUBSCRIBED, CHAT_MESSAGE, ERROR
        assert metric(server, "chat_errors_total") == 1
        assert metric(server, "chat_batches_total") == 0
        assert metric(server, "chat_dropped_total") == 0
        assert metric(server, "chat_auth_failures_total") == 0
        assert metric(server, "chat_connections") == 0
        assert metric(server, "chat_subscriptions") == 0
        assert metric(server, "chat_http_requests_total") >= 3  # the token requests (and these scrapes)

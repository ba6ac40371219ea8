"""Every protocol path of docs/PROTOCOL.md against the real server, with real websockets clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bench.core import protocol
from tests.utils import TIMEOUT, RunningServer, basic_auth, fetch_token, http_get, start_server
from tests.utils.chat_client import ChatClient, chat_client, now_ms


@pytest.fixture(scope="module")
def server(single_or_cluster: RunningServer) -> RunningServer:
    """Every path in one process and on a 2-worker cluster, the clients of each test on different workers."""
    return single_or_cluster


def page(server: RunningServer, user: str, channel: str, query: str = "") -> dict[str, Any]:
    token = fetch_token(server.url, user)
    status, body = http_get(
        f"{server.url}/channels/{channel}/messages?{query}", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def test_token_endpoint_returns_jwt_user_and_expiry(server: RunningServer) -> None:
    status, body = http_get(f"{server.url}/auth/token", headers=basic_auth("carol"))
    assert status == 200
    reply = json.loads(body)
    assert reply["userId"] == "carol"
    assert reply["expiresIn"] == 3600
    assert reply["token"].count(".") == 2


def test_subscribe_syncs_last_message_id_and_online_users(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "s1") as first, chat_client(server, "s2") as second:
            synced = await first.subscribe("sync")
            assert synced["lastMessageId"] == 0
            assert synced["online"] == ["s1"]
            for n in range(3):
                await first.publish("sync", f"m{n}")
            for _ in range(3):
                await first.expect(protocol.CHAT_MESSAGE)
            synced = await second.subscribe("sync")
            assert synced["lastMessageId"] == 3
            assert synced["online"] == ["s1", "s2"]

    asyncio.run(scenario())


def test_unsubscribe_stops_delivery(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "u1") as talker, chat_client(server, "u2") as leaver:
            await talker.subscribe("unsub")
            await leaver.subscribe("unsub")
            await leaver.send(protocol.unsubscribe("unsub", now_ms()))
            reply = await leaver.expect(protocol.UNSUBSCRIBED)
            assert reply["channelId"] == "unsub"
            await talker.publish("unsub", "after")
            await talker.expect(protocol.CHAT_MESSAGE)
            assert not [m for m in await leaver.drain() if m["type"] == protocol.CHAT_MESSAGE]
            error = await leaver.error(protocol.unsubscribe("unsub", now_ms()))
            assert error["code"] == protocol.NOT_SUBSCRIBED

    asyncio.run(scenario())


def test_publish_fields_and_message_types(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "p1") as client:
            await client.subscribe("types")
            for kind in ("TEXT", "FILE", "IMAGE"):
                await client.send(protocol.publish("types", f"a {kind}", 1234, f"id-{kind}", kind))
                event = await client.expect(protocol.CHAT_MESSAGE)
                message = event["message"]
                assert message["messageType"] == kind
                assert message["timestamp"] == 1234
                assert message["clientMsgId"] == f"id-{kind}"
                assert message["channelId"] == "types"  # the seed's batcher files messages by it
                assert set(message) == {
                    "id",
                    "channelId",
                    "senderId",
                    "messageType",
                    "content",
                    "timestamp",
                    "serverTimestamp",
                    "clientMsgId",
                }
                assert isinstance(event["timestamp"], int)

    asyncio.run(scenario())


def test_ids_are_monotonic_per_channel(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "ids") as client:
            await client.subscribe("ids-a")
            await client.subscribe("ids-b")
            for n in range(4):
                await client.publish("ids-a" if n % 2 == 0 else "ids-b", f"n{n}")
            got = [await client.expect(protocol.CHAT_MESSAGE) for _ in range(4)]
            ids = {(e["channelId"], e["message"]["id"]) for e in got}
            assert ids == {("ids-a", 1), ("ids-a", 2), ("ids-b", 1), ("ids-b", 2)}

    asyncio.run(scenario())


def test_read_receipt_fans_out_with_reader(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "r1") as writer, chat_client(server, "r2") as reader:
            await writer.subscribe("receipts")
            await reader.subscribe("receipts")
            await writer.publish("receipts", "read me")
            event = await reader.expect(protocol.CHAT_MESSAGE)
            await reader.send(protocol.read_receipt("receipts", event["message"]["id"], now_ms()))
            for client in (writer, reader):
                receipt = await client.expect(protocol.READ_RECEIPT)
                assert receipt == {**receipt, "channelId": "receipts", "messageId": 1, "userId": "r2"}
            error = await reader.error(protocol.read_receipt("receipts", 99, now_ms()))
            assert error["code"] == protocol.BAD_MESSAGE

    asyncio.run(scenario())


def test_user_status_explicit_and_on_connect_and_disconnect(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "watcher") as watcher:
            await watcher.subscribe("presence")
            async with chat_client(server, "visitor") as visitor:
                await visitor.subscribe("presence")
                joined = await watcher.expect(protocol.USER_STATUS, userId="visitor")
                assert (joined["status"], joined["channelId"]) == ("ONLINE", "presence")
                await visitor.send(protocol.user_status("AWAY", now_ms()))
                away = await watcher.expect(protocol.USER_STATUS, userId="visitor")
                assert (away["status"], away["channelId"]) == ("AWAY", "presence")
                assert await visitor.expect(protocol.USER_STATUS, userId="visitor", status="AWAY", channelId="presence")
            left = await watcher.expect(protocol.USER_STATUS, userId="visitor")
            assert (left["status"], left["channelId"]) == ("OFFLINE", "presence")
            synced = await watcher.subscribe("presence")
            assert synced["online"] == ["watcher"]

    asyncio.run(scenario())


def test_user_status_names_the_channel_of_each_event(server: RunningServer) -> None:
    """A watcher sharing two channels with a user gets one event per channel, told apart by channelId; the
    user's connection that is in no channel gets its echo with channelId null."""

    async def scenario() -> None:
        async with (
            chat_client(server, "twin-watcher") as watcher,
            chat_client(server, "twin") as twin,
            chat_client(server, "twin") as idle,
        ):
            for channel in ("twin-a", "twin-b"):
                await watcher.subscribe(channel)
                await twin.subscribe(channel)
                await watcher.expect(protocol.USER_STATUS, userId="twin", channelId=channel)
            await twin.send(protocol.user_status("AWAY", now_ms()))
            seen = [await watcher.expect(protocol.USER_STATUS, userId="twin", status="AWAY") for _ in range(2)]
            assert sorted(event["channelId"] for event in seen) == ["twin-a", "twin-b"]
            echo = await idle.expect(protocol.USER_STATUS, userId="twin", status="AWAY")
            assert echo["channelId"] is None
            await idle.ws.close()
            await twin.ws.close()  # the user's last connection: OFFLINE in each channel it was in
            gone = [await watcher.expect(protocol.USER_STATUS, userId="twin", status="OFFLINE") for _ in range(2)]
            assert sorted(event["channelId"] for event in gone) == ["twin-a", "twin-b"]

    asyncio.run(scenario())


def test_mention_notifies_a_connected_user(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "m1") as sender, chat_client(server, "m2") as mentioned:
            await sender.subscribe("mentions")
            await sender.publish("mentions", "ping @m2 and @nobody")
            note = await mentioned.expect(protocol.NOTIFICATION)
            assert note["kind"] == "mention"
            assert note["channelId"] == "mentions"
            assert note["messageId"] == 1
            assert note["senderId"] == "m1"
            assert not [m for m in await sender.drain() if m["type"] == protocol.NOTIFICATION]

    asyncio.run(scenario())


def test_history_newest_page_before_and_after(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "h1") as client:
            await client.subscribe("hist")
            for n in range(1, 8):
                await client.publish("hist", f"h{n}")
            for _ in range(7):
                await client.expect(protocol.CHAT_MESSAGE)

    asyncio.run(scenario())
    newest = page(server, "h1", "hist", "limit=3")
    assert [m["id"] for m in newest["messages"]] == [5, 6, 7]
    assert newest["hasMore"] is True
    assert {m["channelId"] for m in newest["messages"]} == {"hist"}
    older = page(server, "h1", "hist", "before=5&limit=3")
    assert [m["id"] for m in older["messages"]] == [2, 3, 4]
    assert older["hasMore"] is True
    oldest = page(server, "h1", "hist", "before=2&limit=3")
    assert [m["id"] for m in oldest["messages"]] == [1]
    assert oldest["hasMore"] is False
    newer = page(server, "h1", "hist", "after=2&limit=3")
    assert [m["id"] for m in newer["messages"]] == [3, 4, 5]
    assert newer["hasMore"] is True
    assert page(server, "h1", "hist", "after=5")["hasMore"] is False
    assert page(server, "h1", "hist")["messages"][0]["content"] == "h1"  # default limit covers all 7
    assert page(server, "h1", "never-used") == {"channelId": "never-used", "messages": [], "hasMore": False}


def test_history_rejects_bad_parameters(server: RunningServer) -> None:
    token = fetch_token(server.url, "h2")
    auth = {"Authorization": f"Bearer {token}"}
    for query in ("before=x", "after=-1", "before=3&after=1"):
        status, body = http_get(f"{server.url}/channels/hist/messages?{query}", headers=auth)
        assert status == 400, query
        assert "error" in json.loads(body)
    status, body = http_get(f"{server.url}/channels/hist/messages?limit=100000", headers=auth)
    assert status == 200


def test_unknown_path_is_404_and_plain_get_on_ws_is_426(server: RunningServer) -> None:
    assert http_get(f"{server.url}/nope")[0] == 404
    assert http_get(f"{server.url}/ws")[0] == 426


def test_online_list_is_capped_and_counts_visible_users() -> None:
    with start_server("default", "presence_list_max=2") as capped:

        async def scenario() -> None:
            async with (
                chat_client(capped, "a") as a,
                chat_client(capped, "b") as b,
                chat_client(capped, "c") as c,
                chat_client(capped, "d") as d,
            ):
                await a.subscribe("crowd")
                await b.subscribe("crowd")
                synced = await c.subscribe("crowd")
                assert (synced["online"], synced["onlineCount"]) == (["a", "b"], 3)
                await b.send(protocol.user_status("OFFLINE", now_ms()))
                await b.expect(protocol.USER_STATUS, userId="b", status="OFFLINE")
                synced = await d.subscribe("crowd")
                assert (synced["online"], synced["onlineCount"]) == (["a", "c"], 3)

        asyncio.run(scenario())


def test_bearer_header_upgrade_root_path_and_string_receipt_ids(server: RunningServer) -> None:
    async def scenario() -> None:
        token = await asyncio.to_thread(fetch_token, server.url, "bearer")
        root = server.ws_url.removesuffix("/ws") + "/"
        async with connect(root, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=TIMEOUT) as ws:
            client = ChatClient(ws, "bearer")
            await client.subscribe("strings")
            await client.publish("strings", "s")
            await client.expect(protocol.CHAT_MESSAGE)
            await client.send(protocol.read_receipt("strings", "1", now_ms()))  # the seed's string form
            receipt = await client.expect(protocol.READ_RECEIPT)
            assert receipt["messageId"] == 1  # out as the integer the message's id is

    asyncio.run(scenario())

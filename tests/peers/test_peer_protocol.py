"""Each peer server (node-ws, picows) speaks the bundled server's protocol: real process, real clients."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server_under_test import config
from tests.utils import TIMEOUT, RunningServer, basic_auth, http_json
from tests.utils.peers import next_status, open_client, recv, send, subscribe, token_for


def test_token_endpoint_issues_interoperable_jwt(peer: RunningServer) -> None:
    status, body = http_json(peer.url + "/auth/token", basic_auth("alice"))
    assert status == 200
    assert body["userId"] == "alice" and body["expiresIn"] == config.DEFAULT_TOKEN_TTL_S
    claims = jwt.decode(body["token"], config.DEFAULT_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["exp"] > time.time()
    assert http_json(peer.url + "/auth/token", basic_auth("alice", "wrong"))[0] == 401
    assert http_json(peer.url + "/auth/token")[0] == 401
    status, health = http_json(peer.url + "/healthz")
    assert status == 200 and health["status"] == "ok" and health["preset"]
    assert health["connections"] == 0 and health["uptimeS"] >= 0


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        jwt.encode(
            {"sub": "eve", "exp": int(time.time()) + 60}, "forged-secret-of-a-decent-length-too-32b", algorithm="HS256"
        ),
        jwt.encode({"sub": "eve", "exp": int(time.time()) - 60}, config.DEFAULT_JWT_SECRET, algorithm="HS256"),
    ],
    ids=["missing", "garbage", "forged", "expired"],
)
def test_bad_token_is_refused_before_the_upgrade(peer: RunningServer, token: str) -> None:
    async def attempt() -> None:
        with pytest.raises(InvalidStatus) as info:
            await connect(f"{peer.ws_url}?token={token}", open_timeout=TIMEOUT)
        assert info.value.response.status_code == 401

    asyncio.run(attempt())


def test_token_minted_elsewhere_is_accepted(peer: RunningServer) -> None:
    """A token signed with the shared default secret (as the bundled server does) opens a socket."""
    token = jwt.encode({"sub": "carol", "exp": int(time.time()) + 60}, config.DEFAULT_JWT_SECRET, algorithm="HS256")

    async def attempt() -> None:
        async with connect(f"{peer.ws_url}?token={token}", open_timeout=TIMEOUT) as ws:
            assert (await subscribe(ws, "interop"))["online"] == ["carol"]

    asyncio.run(attempt())


def test_publish_fans_out_to_every_subscriber_including_the_sender(peer: RunningServer) -> None:
    async def scenario() -> None:
        users = [f"fan{i}" for i in range(4)]
        clients = [await open_client(peer, user) for user in users]
        outsider = await open_client(peer, "outsider")
        try:
            for ws in clients:
                state = await subscribe(ws, "fanout")
            assert sorted(state["online"]) == users and state["lastMessageId"] == 0
            await subscribe(outsider, "elsewhere")
            for seq in range(5):
                for index in (0, 1):
                    await send(
                        clients[index],
                        type="PUBLISH",
                        channelId="fanout",
                        messageType="TEXT",
                        content=f"m{seq}",
                        timestamp=1000 + seq,
                        clientMsgId=f"p{index}:{seq}",
                    )
            for ws in clients:
                got = [await recv(ws) for _ in range(10)]
                assert {msg["type"] for msg in got} == {"CHAT_MESSAGE"}
                ids = [msg["message"]["id"] for msg in got]
                assert ids == list(range(1, 11))
                for index in (0, 1):
                    mine = [msg["message"] for msg in got if msg["message"]["senderId"] == users[index]]
                    assert [m["clientMsgId"] for m in mine] == [f"p{index}:{seq}" for seq in range(5)]
                    assert [m["timestamp"] for m in mine] == [1000 + seq for seq in range(5)]
                    assert all(m["messageType"] == "TEXT" and m["serverTimestamp"] > 0 for m in mine)
                    assert {m["channelId"] for m in mine} == {"fanout"}
            await send(outsider, type="USER_STATUS", status="AWAY", timestamp=0)
            assert await next_status(outsider, "outsider") == "ONLINE"  # its own join, after SUBSCRIBED
            first = await recv(outsider, presence=True)  # and next its own AWAY: nothing of "fanout" leaked
            assert (first["type"], first["userId"], first["status"]) == ("USER_STATUS", "outsider", "AWAY")
            assert first["channelId"] == "elsewhere"
        finally:
            for ws in [*clients, outsider]:
                await ws.close()

    asyncio.run(scenario())


def test_user_status_names_each_shared_channel(peer: RunningServer) -> None:
    """One USER_STATUS per channel the user is in, told apart by channelId; null on the channel-less echo."""

    async def scenario() -> None:
        watcher, twin, idle = [await open_client(peer, user) for user in ("watcher", "twin", "twin")]
        try:
            for channel in ("pair-a", "pair-b"):
                await subscribe(watcher, channel)
                await subscribe(twin, channel)
            await send(twin, type="USER_STATUS", status="AWAY", timestamp=0)
            seen: list[dict[str, object]] = []
            while len(seen) < 2:
                event = await recv(watcher, presence=True)
                if event["status"] == "AWAY":
                    seen.append(event)
            assert sorted(str(event["channelId"]) for event in seen) == ["pair-a", "pair-b"]
            echo = await recv(idle, presence=True)
            assert (echo["userId"], echo["status"], echo["channelId"]) == ("twin", "AWAY", None)
        finally:
            for ws in (watcher, twin, idle):
                await ws.close()

    asyncio.run(scenario())


def test_presence_read_receipt_mention_and_offline(peer: RunningServer) -> None:
    async def scenario() -> None:
        alice, bob = await open_client(peer, "alice"), await open_client(peer, "bob")
        try:
            await subscribe(alice, "room")
            assert sorted((await subscribe(bob, "room"))["online"]) == ["alice", "bob"]
            assert await next_status(alice, "alice") == "ONLINE"  # her own join comes after SUBSCRIBED
            assert await next_status(alice, "bob") == "ONLINE"
            assert await next_status(bob, "bob") == "ONLINE"
            await send(alice, type="PUBLISH", channelId="room", content="hi @bob.", timestamp=0, clientMsgId="x")
            assert (await recv(alice))["type"] == "CHAT_MESSAGE"
            got = [await recv(bob), await recv(bob)]
            assert got[0]["type"] == "CHAT_MESSAGE"  # the message goes out before its notification
            note = got[1]
            assert (note["type"], note["kind"], note["senderId"]) == ("NOTIFICATION", "mention", "alice")
            assert (note["channelId"], note["messageId"], note["content"]) == ("room", 1, "hi @bob.")
            for message_id in (1, "1"):  # the seed sends the id as a string; it comes back as the integer
                await send(bob, type="READ_RECEIPT", channelId="room", messageId=message_id, timestamp=0)
                for ws in (alice, bob):
                    receipt = await recv(ws)
                    assert receipt["type"] == "READ_RECEIPT"
                    assert (receipt["channelId"], receipt["messageId"], receipt["userId"]) == ("room", 1, "bob")
            for bad in (99, "\u0661", " 1", "0x1", "1.0"):
                await send(bob, type="READ_RECEIPT", channelId="room", messageId=bad, timestamp=0)
                assert (await recv(bob))["code"] == "BAD_MESSAGE", bad
            await send(bob, type="USER_STATUS", status="AWAY", timestamp=0)
            for ws in (alice, bob):
                status = await recv(ws, presence=True)
                assert (status["type"], status["userId"], status["status"]) == ("USER_STATUS", "bob", "AWAY")
                assert status["channelId"] == "room"
            await bob.close()
            assert await next_status(alice, "bob") == "OFFLINE"
            await send(alice, type="UNSUBSCRIBE", channelId="room", timestamp=0)
            assert (await recv(alice))["type"] == "UNSUBSCRIBED"
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(scenario())


def test_channel_rule_of_the_bundled_server(peer: RunningServer) -> None:
    """A ``channels`` claim restricts by fnmatch pattern; ``dm:a:b`` is open to a and b only."""
    claims = {"sub": "dana", "exp": int(time.time()) + 60, "channels": ["team-*", "dm:*"]}
    token = jwt.encode(claims, config.DEFAULT_JWT_SECRET, algorithm="HS256")

    async def scenario() -> None:
        async with connect(f"{peer.ws_url}?token={token}", open_timeout=TIMEOUT) as ws:
            await subscribe(ws, "team-red")
            await subscribe(ws, "dm:dana:erin")
            for channel in ("general", "dm:erin:fred"):
                await send(ws, type="SUBSCRIBE", channelId=channel, timestamp=0)
                assert (await recv(ws))["code"] == "FORBIDDEN"
                await send(ws, type="PUBLISH", channelId=channel, content="x", timestamp=0)
                assert (await recv(ws))["code"] == "FORBIDDEN"

    asyncio.run(scenario())
    auth = {"Authorization": "Bearer " + token}
    assert http_json(peer.url + "/channels/team-red/messages", auth)[0] == 200
    assert http_json(peer.url + "/channels/general/messages", auth)[0] == 403


def test_history_paging_is_exact(peer: RunningServer) -> None:
    total = 23

    async def publish_all() -> None:
        ws = await open_client(peer, "writer")
        try:
            await subscribe(ws, "paged")
            for seq in range(total):
                await send(ws, type="PUBLISH", channelId="paged", content=str(seq), timestamp=0, clientMsgId=str(seq))
            assert [(await recv(ws))["message"]["id"] for _ in range(total)] == list(range(1, total + 1))
        finally:
            await ws.close()

    asyncio.run(publish_all())
    auth = {"Authorization": "Bearer " + token_for(peer, "reader")}
    base = peer.url + "/channels/paged/messages"

    status, newest = http_json(base + "?limit=5", auth)
    assert (
        status == 200
        and newest["channelId"] == "paged"
        and [m["id"] for m in newest["messages"]] == [19, 20, 21, 22, 23]
        and {m["channelId"] for m in newest["messages"]} == {"paged"}
        and newest["hasMore"]
    )
    backward: list[int] = []
    before = 24
    while True:
        page = http_json(f"{base}?before={before}&limit=7", auth)[1]
        ids = [m["id"] for m in page["messages"]]
        assert ids == sorted(ids)
        backward = ids + backward
        if not page["hasMore"]:
            break
        before = ids[0]
    assert backward == list(range(1, total + 1))
    forward: list[int] = []
    after = 0
    while True:
        page = http_json(f"{base}?after={after}&limit=6", auth)[1]
        forward += [m["id"] for m in page["messages"]]
        if not page["hasMore"]:
            break
        after = forward[-1]
    assert forward == list(range(1, total + 1))
    assert [m["content"] for m in http_json(f"{base}?after=20", auth)[1]["messages"]] == ["20", "21", "22"]
    everything = http_json(f"{base}?limit=100000", auth)[1]  # capped at the page maximum (> total)
    assert [m["id"] for m in everything["messages"]] == list(range(1, total + 1)) and not everything["hasMore"]
    assert [m["id"] for m in http_json(f"{base}?limit=0", auth)[1]["messages"]] == [total]  # clamped to 1
    empty = {"channelId": "nowhere", "messages": [], "hasMore": False}
    assert http_json(peer.url + "/channels/nowhere/messages", auth) == (200, empty)
    assert http_json(f"{base}?token={auth['Authorization'].split()[1]}")[0] == 200  # the query form of the token
    assert http_json(base)[0] == 401
    for query in ("before=3&after=1", "limit=x", "after=-1"):
        status, body = http_json(f"{base}?{query}", auth)
        assert (status, body["status"]) == (400, 400) and body["error"]


def test_http_errors_do_not_disturb_the_server(peer: RunningServer) -> None:
    assert http_json(peer.url + "/nowhere")[0] == 404
    assert http_json(peer.url + "/ws")[0] == 426  # no upgrade headers
    auth = {"Authorization": "Bearer " + token_for(peer, "probe")}
    assert http_json(peer.url + "/channels/%E0%A4%A/messages", auth)[0] in (200, 400)  # a broken escape
    assert http_json(peer.url + "/healthz")[0] == 200


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "BAD_JSON"),
        ("[1, 2]", "BAD_MESSAGE"),
        ('{"channelId": "x"}', "MISSING_FIELD"),
        ('{"type": "DANCE"}', "UNKNOWN_TYPE"),
        ('{"type": "SUBSCRIBE"}', "MISSING_FIELD"),
        ('{"type": "SUBSCRIBE", "channelId": true}', "BAD_MESSAGE"),
        ('{"type": "PUBLISH", "channelId": "c", "content": "x", "messageType": "VIDEO"}', "BAD_MESSAGE"),
        ('{"type": "PUBLISH", "channelId": "c", "content": 5}', "BAD_MESSAGE"),
        ('{"type": "PUBLISH", "channelId": "never-joined", "content": "x"}', "NOT_SUBSCRIBED"),
        ('{"type": "UNSUBSCRIBE", "channelId": "never-joined"}', "NOT_SUBSCRIBED"),
        ('{"type": "USER_STATUS", "status": "ASLEEP"}', "BAD_MESSAGE"),
    ],
)
def test_bad_input_gets_an_error_and_the_connection_goes_on(peer: RunningServer, frame: str, code: str) -> None:
    async def scenario() -> None:
        async with await open_client(peer, "fuzzer") as ws:
            await ws.send(frame)
            reply = await recv(ws)
            assert (reply["type"], reply["code"]) == ("ERROR", code), reply
            assert reply["reason"]
            await subscribe(ws, "still-alive")

    asyncio.run(scenario())


def test_oversize_frame_closes_with_1009(peer: RunningServer) -> None:
    async def scenario() -> None:
        async with await open_client(peer, "big") as ws:
            await ws.send("x" * (config.DEFAULT_MAX_MESSAGE_BYTES + 1))
            with pytest.raises(ConnectionClosed):
                await recv(ws)
            assert ws.close_code == 1009

    asyncio.run(scenario())


def test_metrics_use_the_bundled_servers_names(peer: RunningServer) -> None:
    async def scenario() -> None:
        a, b = await open_client(peer, "m1"), await open_client(peer, "m2")
        try:
            for ws in (a, b):
                await subscribe(ws, "metered")
            await send(a, type="PUBLISH", channelId="metered", content="x", timestamp=0, clientMsgId="1")
            for ws in (a, b):
                assert (await recv(ws))["type"] == "CHAT_MESSAGE"
            text = urllib.request.urlopen(peer.url + "/metrics", timeout=TIMEOUT).read().decode()
            values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
            assert int(values["chat_connections"]) >= 2 and int(values["chat_subscriptions"]) >= 2
            assert int(values["chat_messages_in_total"]) >= 1 and int(values["chat_messages_out_total"]) >= 2
            for name in (
                "chat_frames_in_total",
                "chat_frames_out_total",
                "chat_auth_failures_total",
                "chat_errors_total",
                "chat_connections_accepted_total",
                "chat_channels",
            ):
                assert name in values
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())

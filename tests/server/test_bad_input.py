"""Every refused input gets its documented answer, and nothing a client sends disturbs the others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from bench.core import protocol
from tests.utils import TIMEOUT, RunningServer, http_get, start_server
from tests.utils.chat_client import ChatClient, chat_client

MAX_BYTES = 4096


@pytest.fixture(scope="module", params=["default", "naive"])
def strict(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with start_server(
        request.param,
        "rate_limit_per_s=20",
        "rate_limit_burst=60",
        "rate_limit_close_after=30",
        'content_filter=["spam", "free money"]',
        f"max_message_bytes={MAX_BYTES}",
    ) as running:
        yield running


async def assert_still_served(client: ChatClient, channel: str) -> None:
    await client.publish(channel, "still here")
    while (await client.expect(protocol.CHAT_MESSAGE))["message"]["content"] != "still here":
        pass


BAD_FRAMES: list[tuple[Any, str]] = [
    ("{not json", protocol.BAD_JSON),
    ("", protocol.BAD_JSON),
    ("[1, 2]", protocol.BAD_MESSAGE),
    ("42", protocol.BAD_MESSAGE),
    ({"channelId": "bad"}, protocol.MISSING_FIELD),
    ({"type": "DANCE"}, protocol.UNKNOWN_TYPE),
    ({"type": "SUBSCRIBE"}, protocol.MISSING_FIELD),
    ({"type": "PUBLISH", "channelId": "bad", "messageType": "TEXT"}, protocol.MISSING_FIELD),
    ({"type": "PUBLISH", "channelId": "bad", "content": 5}, protocol.BAD_MESSAGE),
    ({"type": "PUBLISH", "channelId": "bad", "content": "x", "messageType": "VIDEO"}, protocol.BAD_MESSAGE),
    ({"type": "PUBLISH", "channelId": "bad", "content": "x", "messageType": ["TEXT"]}, protocol.BAD_MESSAGE),
    ({"type": "PUBLISH", "channelId": "bad", "content": "x", "timestamp": 2**70}, protocol.BAD_MESSAGE),
    ({"type": "SUBSCRIBE", "channelId": "c" * 129}, protocol.BAD_MESSAGE),
    ({"type": "SUBSCRIBE", "channelId": ""}, protocol.BAD_MESSAGE),
    ({"type": "USER_STATUS", "status": "ASLEEP"}, protocol.BAD_MESSAGE),
    ({"type": "READ_RECEIPT", "channelId": "bad", "messageId": "abc"}, protocol.BAD_MESSAGE),
    ({"type": "READ_RECEIPT", "channelId": "bad", "messageId": "\u0661"}, protocol.BAD_MESSAGE),  # a non-ASCII digit
    ({"type": "READ_RECEIPT", "channelId": "bad", "messageId": " 1"}, protocol.BAD_MESSAGE),
    ({"type": "READ_RECEIPT", "channelId": "bad", "messageId": "1_0"}, protocol.BAD_MESSAGE),
    ({"type": "READ_RECEIPT", "channelId": "elsewhere", "messageId": 1}, protocol.NOT_SUBSCRIBED),
    (protocol.publish("elsewhere", "hi", 0, "x"), protocol.NOT_SUBSCRIBED),
    (protocol.publish("bad", "this is SPAM indeed", 0, "x"), protocol.CONTENT_FILTERED),
    (protocol.publish("bad", "get free  money? no: free money!", 0, "x"), protocol.CONTENT_FILTERED),
]


def test_each_bad_input_gets_its_error_and_the_connection_goes_on(strict: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(strict, "bad") as client:
            await client.subscribe("bad")
            for frame, code in BAD_FRAMES:
                error = await client.error(frame if isinstance(frame, str) else json.dumps(frame))
                assert error["code"] == code, (frame, error)
                assert error["reason"]
            await assert_still_served(client, "bad")

    asyncio.run(scenario())


def test_content_filter_matches_whole_words_only(strict: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(strict, "words") as client:
            await client.subscribe("words")
            await client.publish("words", "spammer and spamming are fine")
            event = await client.expect(protocol.CHAT_MESSAGE)
            assert event["message"]["content"] == "spammer and spamming are fine"

    asyncio.run(scenario())


def test_flood_is_rate_limited_then_closed_with_1008(strict: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(strict, "flooder") as flooder, chat_client(strict, "calm") as calm:
            await calm.subscribe("flood")
            await flooder.subscribe("flood")
            for n in range(150):
                try:
                    await flooder.publish("flood", f"f{n}")
                except ConnectionClosed:
                    break
            codes: list[str] = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    message = await flooder.recv()
                    if message["type"] == protocol.ERROR:
                        codes.append(message["code"])
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == protocol.CLOSE_POLICY
            assert codes and set(codes) == {protocol.RATE_LIMITED}
            await assert_still_served(calm, "flood")

    asyncio.run(scenario())
    metrics = http_get(f"{strict.url}/metrics")[1].decode()
    assert "chat_rate_limited_total 0" not in metrics
    assert "chat_rate_limit_closes_total 1" in metrics


def test_oversize_frame_closes_with_1009(strict: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(strict, "big") as big:
            await big.subscribe("big")
            await big.publish("big", "x" * (MAX_BYTES + 1))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await big.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == protocol.CLOSE_TOO_BIG

    asyncio.run(scenario())


HOSTILE: list[str | bytes] = [
    "[" * 100_000,
    '{"type": "PUBLISH", "channelId": "h", "content": "' + "\\ud800" + '"}',
    '{"type": "SUBSCRIBE", "channelId": 1e999}',
    '{"type": "SUBSCRIBE", "channelId": {"a": 1}}',
    '{"type": "PUBLISH", "channelId": "h", "content": "x", "timestamp": 1e400}',
    '{"type": "PUBLISH", "channelId": "h", "content": "x", "timestamp": NaN}',
    '{"type": "SUBSCRIBE", "channelId": "\\udfff"}',
    '{"type": "PUBLISH", "channelId": "h", "content": "x", "clientMsgId": [1]}',
    '{"type": null}',
    "\x00\x01\x02",
    b"\xff\xfe binary garbage",
    json.dumps({"type": "READ_RECEIPT", "channelId": "h", "messageId": 10**30}),
]


def test_hostile_input_neither_crashes_nor_disturbs_others(strict: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(strict, "victim") as victim, chat_client(strict, "hostile") as hostile:
            await victim.subscribe("h")
            await hostile.subscribe("h")
            for n, frame in enumerate(HOSTILE):
                await hostile.ws.send(frame[:MAX_BYTES] if isinstance(frame, bytes) else frame[: MAX_BYTES - 1])
                await hostile.expect(protocol.ERROR)
                await hostile.publish("h", f"between-{n}")
            seen = [m["message"]["content"] for m in await victim.drain(0.5) if m["type"] == protocol.CHAT_MESSAGE]
            assert seen == [f"between-{n}" for n in range(len(HOSTILE))]
        async with chat_client(strict, "invalid-utf8") as broken:
            await broken.ws.send(b"\xff\xfe", text=True)
            with pytest.raises(ConnectionClosed):
                while True:
                    await broken.recv(TIMEOUT)

    asyncio.run(scenario())
    assert http_get(f"{strict.url}/healthz")[0] == 200
    assert "Traceback" not in strict.log_text()


FUZZ_VALUES: list[Any] = [None, True, 0, -1, 2**70, 1.5, 1e308, "", "x" * 300, [], {}, [1], {"a": 1}, "dm:a:b", "@u"]
FUZZ_KEYS = ["type", "channelId", "content", "messageType", "timestamp", "clientMsgId", "messageId", "status"]


def mutations(seed: int, count: int) -> Iterator[str]:
    """Valid client messages with one to three fields dropped or replaced by values of every JSON type."""
    rng = random.Random(seed)
    bases = [
        protocol.publish("fuzz", "hi @u", 1, "c"),
        protocol.subscribe("fuzz", 1),
        protocol.read_receipt("fuzz", 1, 1),
        protocol.user_status("AWAY", 1),
    ]
    for _ in range(count):
        message = dict(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(FUZZ_KEYS)
            if rng.random() < 0.3:
                message.pop(key, None)
            else:
                message[key] = rng.choice([*FUZZ_VALUES, *protocol.CLIENT_TYPES])
        yield json.dumps(message)


@pytest.mark.parametrize("preset", ["default", "naive"])
def test_fuzzed_messages_never_crash_or_lose_others_messages(preset: str) -> None:
    with start_server(preset, "rate_limit_per_s=0") as server:

        async def scenario() -> None:
            async with chat_client(server, "u") as bystander, chat_client(server, "fuzzer") as fuzzer:
                await bystander.subscribe("fuzz")
                await fuzzer.subscribe("fuzz")
                # keep reading the fuzzer's answers through its close, or the close handshake stalls behind them
                answers = asyncio.create_task(fuzzer.drain(TIMEOUT))
                for n, frame in enumerate(mutations(seed=11, count=600)):
                    await fuzzer.ws.send(frame)
                    if n % 100 == 0:
                        await bystander.publish("fuzz", f"steady-{n}")
                await bystander.publish("fuzz", "end")
                seen: list[str] = []
                while not seen or seen[-1] != "end":
                    message = (await bystander.expect(protocol.CHAT_MESSAGE))["message"]
                    if message["senderId"] == "u":
                        seen.append(message["content"])
                assert seen == [f"steady-{n}" for n in range(0, 600, 100)] + ["end"]

            with contextlib.suppress(ConnectionClosed):
                await answers

        asyncio.run(scenario())
        assert "Traceback" not in server.log_text()

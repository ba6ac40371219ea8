"""Regression tests for the hostile-input findings of issue 10, each with the exact input that broke it."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.core import protocol
from bench.core.integers import LIMIT, parse_digits, parse_integer
from server_under_test.config import list_presets
from server_under_test.history import SqliteHistory
from server_under_test.soak import SUBSCRIBERS, Target, canary, login
from tests.utils import TIMEOUT, RunningServer, fetch_token, http_get, start_server
from tests.utils.chat_client import chat_client, chat_messages, metric
from tests.utils.hostile import BINARY, CONTINUATION, PING, TEXT, close_code, exchange, frame, open_websocket
from tests.utils.hostile import request as http_request

LAX_INTEGERS = [" 5", "+5", "5_0", "\uff15", "\u0665", "5 ", "-5", "0x5", "", "9223372036854775808", "1" * 30]


# --- finding 10 (and 5): one integer rule -----------------------------------------------------------


@given(st.text(max_size=25))
def test_parse_digits_accepts_exactly_ascii_digits_in_range(text: str) -> None:
    ascii_digits = bool(text) and all("0" <= char <= "9" for char in text)
    if ascii_digits and int(text) < LIMIT:
        assert parse_digits(text) == int(text)
    else:
        with pytest.raises(ValueError):
            parse_digits(text)


@pytest.mark.parametrize("value", [True, 1.0, -1, LIMIT, None, [1]])
def test_parse_integer_refuses_what_is_not_an_id(value: object) -> None:
    with pytest.raises(ValueError):
        parse_integer(value)


@pytest.mark.parametrize("preset", ["default", "durable"])
def test_history_integers_follow_the_one_rule(preset: str, tmp_path: Path) -> None:
    """Finding 5: ``before=9223372036854775808`` killed the SQLite writer; then nothing was stored."""
    database = tmp_path / "h.sqlite3"
    with start_server(preset, f"history_path={database}", "rate_limit_per_s=0") as server:
        token = fetch_token(server.url, "ints")
        auth = {"Authorization": f"Bearer {token}"}
        asyncio.run(publish(server, "general", 20, "a"))
        hostile = [f"{name}={value}" for name in ("before", "after") for value in (2**63, 2**64)]
        hostile += [f"{name}={quote(raw)}" for name in ("before", "after", "limit") for raw in LAX_INTEGERS if raw]
        data = b"".join(http_request("GET", f"/channels/general/messages?{query}", auth) for query in hostile)
        replies = exchange(server, data, expect=len(hostile))
        assert [reply.status for reply in replies] == [400] * len(hostile), hostile
        asyncio.run(publish(server, "general", 20, "b"))
        status, body = http_get(f"{server.url}/channels/general/messages?after=0&limit=100", headers=auth)
        assert status == 200 and len(json.loads(body)["messages"]) == 40
        assert json.loads(http_get(f"{server.url}/healthz")[1])["status"] == "ok"
        assert metric(server, "chat_history_healthy") == 1
        assert server.stop() == 0
    if preset == "durable":
        with sqlite3.connect(database) as conn:
            assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 40


async def publish(server: RunningServer, channel: str, count: int, prefix: str) -> None:
    async with chat_client(server, f"pub-{prefix}") as client:
        await client.subscribe(channel)
        for n in range(count):
            await client.publish(channel, f"{prefix}{n}")
        await chat_messages(client, count)


@pytest.mark.parametrize("preset", ["default", "naive"])
def test_read_receipt_message_id_follows_the_one_rule(preset: str) -> None:
    with start_server(preset) as server:

        async def scenario() -> None:
            async with chat_client(server, "reader") as reader:
                await reader.subscribe("r")
                await reader.publish("r", "one")
                await chat_messages(reader, 1)
                for message_id in [" 1", "+1", "\u0661", "\uff11", "1_0", 2**63, -1, 1.0, True]:
                    error = await reader.error(protocol.read_receipt("r", message_id, 0))  # type: ignore[arg-type]
                    assert error["code"] == protocol.BAD_MESSAGE, message_id
                for message_id in [1, "1"]:
                    await reader.send(protocol.read_receipt("r", message_id, 0))
                    assert (await reader.expect(protocol.READ_RECEIPT))["messageId"] == 1  # one type: the id's

        asyncio.run(scenario())


# --- findings 6 and 9: UTF-8 only, no NaN ----------------------------------------------------------

UTF16_PUBLISH = '{"type":"PUBLISH","channelId":"general","content":"x\ud800y"}'.encode("utf-16-le", "surrogatepass")


@pytest.mark.parametrize("preset", ["naive", "default"])
def test_binary_frames_are_utf8_json_only_and_nan_is_bad_json(preset: str) -> None:
    with start_server(preset) as server:

        async def scenario() -> None:
            async with chat_client(server, "sub") as sub, chat_client(server, "evil") as evil:
                await sub.subscribe("general")
                await evil.subscribe("general")
                await evil.drain(0.1)
                for data in [
                    UTF16_PUBLISH,
                    '{"type":"PUBLISH","channelId":"general","content":"x"}'.encode("utf-16"),
                    b'{"type":"PUBLISH","channelId":"general","content":"\\ud800"}',
                    b"\xff\xfe",
                ]:
                    assert (await evil.error(data))["code"] == protocol.BAD_JSON, data
                for constant in ["NaN", "Infinity", "-Infinity"]:
                    text = f'{{"type":"PUBLISH","channelId":"general","content":"x","timestamp":{constant}}}'
                    assert (await evil.error(text))["code"] == protocol.BAD_JSON, constant
                    assert (await evil.error(text.encode()))["code"] == protocol.BAD_JSON, constant
                # a binary frame of UTF-8 JSON is read as text (docs/PROTOCOL.md)
                await evil.ws.send(json.dumps(protocol.publish("general", "binary ok", 0, "b")).encode())
                await evil.publish("general", "text ok")
                got = [m["content"] for m in await chat_messages(sub, 2)]
                assert got == ["binary ok", "text ok"]
            token = fetch_token(server.url, "pager")
            status, _ = http_get(
                f"{server.url}/channels/general/messages", headers={"Authorization": f"Bearer {token}"}
            )
            assert status == 200

        asyncio.run(scenario())
        assert "Traceback" not in server.log_text()


# --- finding 10: the rate limit counts frames -------------------------------------------------------


def test_a_fragmented_message_counts_every_fragment() -> None:
    with start_server("default", "rate_limit_per_s=1", "rate_limit_burst=100", "rate_limit_close_after=0") as server:
        token = fetch_token(server.url, "frag")
        sock = open_websocket(server, token)
        try:
            sock.sendall(frame(TEXT, json.dumps(protocol.subscribe("frag", 0)).encode()))
            text = json.dumps(protocol.publish("frag", "x" * 290, 0, "frag")).encode()
            pieces = [*(text[n : n + 1] for n in range(299)), text[299:]]
            data = b"".join(
                frame(TEXT if n == 0 else CONTINUATION, piece, fin=n == len(pieces) - 1)
                for n, piece in enumerate(pieces)
            )
            assert len(pieces) == 300
            sock.sendall(data)
            time.sleep(0.5)
            answers = sock.recv(65536).decode(errors="replace")
        finally:
            sock.close()
        assert protocol.RATE_LIMITED in answers and protocol.CHAT_MESSAGE not in answers
        assert metric(server, "chat_messages_in_total") == 0
        assert metric(server, "chat_frames_in_total") == 301


# --- finding 8: a ping flood from a client that never reads ---------------------------------------


@pytest.mark.parametrize("rate_limit", ["rate_limit_per_s=5000", "rate_limit_per_s=0"], ids=["limited", "unlimited"])
def test_ping_flood_without_reading_is_closed_1008_and_bounded(rate_limit: str) -> None:
    """Finding 8: 2,000,000 pings from a client that never read its pongs added 404 MiB and stalled
    everyone (canary p99 570 ms). Now the flood is closed with 1008 while a canary group runs beside it."""
    with start_server("default", rate_limit, "close_timeout_s=3") as server:
        target = Target("127.0.0.1", server.port)
        tokens = [login(target, f"canary-{n}") for n in range(SUBSCRIBERS + 1)]
        rss = psutil.Process(server.pid)
        sock = open_websocket(server, fetch_token(server.url, "flood"), rcvbuf=4096)
        baseline = rss.memory_info().rss
        stop, reports = threading.Event(), []
        runner = threading.Thread(target=lambda: reports.append(asyncio.run(canary(target, tokens, stop, 0.01))))
        runner.start()
        pings = frame(PING, b"p" * 100) * 2000
        sent, deadline = 0, time.monotonic() + 3 * TIMEOUT
        sock.settimeout(0.5)
        try:
            time.sleep(0.3)
            while sent < 2000 and time.monotonic() < deadline:  # at most 4,000,000 pings
                try:
                    sock.sendall(pings)
                except (TimeoutError, BrokenPipeError, ConnectionResetError):
                    break
                sent += 1
            grown = rss.memory_info().rss - baseline
            time.sleep(0.5)
            stop.set()
            runner.join(6 * TIMEOUT)
            code = close_code_after_pongs(sock)
        finally:
            stop.set()
            sock.close()
        assert code == protocol.CLOSE_POLICY
        assert grown < 8 * 1024 * 1024, grown  # the write-buffer bound (1 MiB) and a few MiB of slack
        (report,) = reports
        assert report.sent > 20 and report.missing == 0 and report.duplicated == 0, report
        assert report.p99_ms < 50 * TIMEOUT, report.p99_ms
        assert http_get(f"{server.url}/healthz")[0] == 200


def close_code_after_pongs(sock: socket.socket) -> int | None:
    """Read the server's pongs to the end of the stream; the close code found after them."""
    sock.settimeout(TIMEOUT)
    tail = b""
    deadline = time.monotonic() + 3 * TIMEOUT
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        tail = (tail + chunk)[-(1 << 16) :]
    # frames may be cut at the start of the tail: look for the close frame from its end
    index = tail.rfind(b"\x88")
    return close_code(tail[index:]) if index >= 0 else None


def test_sustained_fragment_flood_is_closed_and_others_keep_their_messages() -> None:
    with start_server("naive", "rate_limit_per_s=50", "rate_limit_burst=50", "rate_limit_close_after=20") as server:

        async def scenario() -> None:
            async with chat_client(server, "calm") as calm:
                await calm.subscribe("f")
                token = await asyncio.to_thread(fetch_token, server.url, "loud")
                sock = await asyncio.to_thread(open_websocket, server, token)
                try:
                    await asyncio.to_thread(
                        sock.sendall, frame(BINARY, b"{", fin=False) + frame(CONTINUATION, b" ", fin=False) * 500
                    )
                    data = await asyncio.to_thread(sock.recv, 65536)
                finally:
                    sock.close()
                assert protocol.RATE_LIMITED.encode() in data
                await calm.publish("f", "still")
                assert [m["content"] for m in await chat_messages(calm, 1)] == ["still"]

        asyncio.run(scenario())
        assert metric(server, "chat_rate_limit_closes_total") == 1


# --- findings 7 and 10 (HTTP), on every shipped preset -------------------------------------------


@pytest.mark.parametrize("preset", list_presets())
def test_exact_http_inputs_on_every_preset(preset: str, tmp_path: Path) -> None:
    with start_server(preset, f"history_path={tmp_path / 'h.sqlite3'}") as server:
        cases = [
            (b"GET /auth/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \xe9\xe9\xe9\xe9\r\n\r\n", [401]),
            (b"POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", [405]),
            (b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", [400]),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2, [200, 200]),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody", [200]),
        ]
        for data, statuses in cases:
            assert [reply.status for reply in exchange(server, data, expect=len(statuses))] == statuses, data
        assert "Traceback" not in server.log_text()


def test_the_sqlite_writer_survives_a_value_sqlite_refuses(tmp_path: Path) -> None:
    """Finding 5's other half: a value SQLite cannot take (OverflowError is no sqlite3.Error) loses that
    row only, is reported by ``failure()`` (so /healthz says degraded), and the rest is stored."""

    async def scenario() -> None:
        store = SqliteHistory(str(tmp_path / "w.sqlite3"))
        await store.open()
        for n in range(1, 6):
            row = {"id": store.allocate_id("c"), "senderId": "u", "messageType": "TEXT", "content": f"m{n}"}
            row |= {"timestamp": 2**64 if n == 3 else n, "serverTimestamp": n, "clientMsgId": None}
            store.append("c", row)
        page = await store.page("c", before=None, after=None, limit=10)
        assert [message["id"] for message in page.messages] == [1, 2, 4, 5]
        assert store.failure() is not None and store.accepting()
        with pytest.raises(OverflowError):
            await store.page("c", before=2**64, after=None, limit=10)
        store.append("c", {**row, "id": store.allocate_id("c"), "timestamp": 6})
        await store.close()
        with sqlite3.connect(tmp_path / "w.sqlite3") as conn:
            assert [id_ for (id_,) in conn.execute("SELECT id FROM messages ORDER BY id")] == [1, 2, 4, 5, 6]

    asyncio.run(scenario())

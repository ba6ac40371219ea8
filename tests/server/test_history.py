"""History: exact paging in both directions on both stores, the memory bound, SQLite across restarts."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.core import protocol
from server_under_test.history import HistoryStore, MemoryHistory, SqliteHistory, message_bytes
from tests.utils import REPO, TIMEOUT, RunningServer, fetch_token, http_get, server_command, start_server
from tests.utils.chat_client import chat_client

COUNT = 137


def stored(n: int, channel: str = "a") -> dict[str, Any]:
    """A stored message as the app stores it (with its channelId, which every history page carries)."""
    return {
        "id": n,
        "channelId": channel,
        "senderId": "u",
        "messageType": "TEXT",
        "content": f"c{n}",
        "timestamp": n,
        "serverTimestamp": n,
        "clientMsgId": None,
    }


async def fill(store: HistoryStore, channel: str, count: int) -> None:
    for _ in range(count):
        store.append(channel, stored(store.allocate_id(channel), channel))


async def walk_back(store: HistoryStore, channel: str, limit: int) -> list[int]:
    page = await store.page(channel, before=None, after=None, limit=limit)
    ids = [m["id"] for m in page.messages]
    while page.has_more:
        page = await store.page(channel, before=ids[0], after=None, limit=limit)
        ids = [m["id"] for m in page.messages] + ids
    return ids


async def walk_forward(store: HistoryStore, channel: str, limit: int) -> list[int]:
    ids: list[int] = []
    while True:
        page = await store.page(channel, before=None, after=ids[-1] if ids else 0, limit=limit)
        ids += [m["id"] for m in page.messages]
        if not page.has_more:
            return ids


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_paging_is_exact_in_both_directions(kind: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        store: HistoryStore = MemoryHistory(10_000) if kind == "memory" else SqliteHistory(str(tmp_path / "h.db"))
        await store.open()
        try:
            await fill(store, "a", COUNT)
            await fill(store, "b", 5)
            for limit in (1, 7, 20, 100, COUNT, COUNT + 1):
                assert await walk_back(store, "a", limit) == list(range(1, COUNT + 1)), limit
                assert await walk_forward(store, "a", limit) == list(range(1, COUNT + 1)), limit
            rng = random.Random(7)
            for _ in range(50):
                pivot, limit = rng.randint(0, COUNT + 2), rng.randint(1, 30)
                older = await store.page("a", before=pivot, after=None, limit=limit)
                assert [m["id"] for m in older.messages] == list(range(max(1, pivot - limit), min(pivot, COUNT + 1)))
                assert older.has_more == (pivot - limit > 1)
                newer = await store.page("a", before=None, after=pivot, limit=limit)
                assert [m["id"] for m in newer.messages] == list(range(pivot + 1, min(pivot + limit, COUNT) + 1))
                assert newer.has_more == (pivot + limit < COUNT)
            assert (await store.page("b", before=None, after=None, limit=20)).messages == [
                stored(n, "b")
                for n in range(1, 6)  # the SQLite store gives channelId back too
            ]
            assert (await store.page("none", before=None, after=None, limit=20)).messages == []
        finally:
            await store.close()

    asyncio.run(scenario())


def test_memory_store_keeps_only_the_newest_per_channel() -> None:
    async def scenario() -> None:
        store = MemoryHistory(50)
        await fill(store, "a", 180)
        assert await walk_back(store, "a", 15) == list(range(131, 181))
        assert await walk_forward(store, "a", 15) == list(range(131, 181))
        assert store.last_id("a") == 180

    asyncio.run(scenario())


def test_memory_store_bounds_all_channels_oldest_first() -> None:
    budget = 100 * message_bytes(stored(1))  # about 100 messages (later ids are a few bytes longer)

    async def scenario() -> None:
        store = MemoryHistory(per_channel=1000, max_bytes=budget)
        await fill(store, "quiet", 10)
        await fill(store, "busy", 80)
        assert await walk_back(store, "quiet", 7) == list(range(1, 11))
        assert await walk_back(store, "busy", 7) == list(range(1, 81))
        await fill(store, "busy", 100)
        assert (await store.page("quiet", before=None, after=None, limit=20)).messages == []
        kept = await walk_back(store, "busy", 7)
        assert kept == list(range(kept[0], 181)) and 90 <= len(kept) <= 100
        assert await walk_forward(store, "busy", 9) == kept
        assert store.retained_bytes() <= budget
        assert store.last_id("quiet") == 10  # ids go on where history was forgotten

    asyncio.run(scenario())


def test_per_channel_and_total_bounds_together() -> None:
    async def scenario() -> None:
        store = MemoryHistory(per_channel=30, max_bytes=50 * message_bytes(stored(1)))
        for n in range(400):
            await fill(store, "a" if n % 3 else "b", 1)
        a, b = await walk_back(store, "a", 8), await walk_back(store, "b", 8)
        assert len(a) == 30 and a == list(range(a[0], a[0] + 30)) and a[-1] == store.last_id("a")
        assert b == list(range(b[0], store.last_id("b") + 1)) and len(b) <= 30
        assert store.retained_bytes() <= 50 * message_bytes(stored(1))

    asyncio.run(scenario())


def page_ids(server: RunningServer, token: str, channel: str, query: str) -> tuple[list[int], bool]:
    status, body = http_get(
        f"{server.url}/channels/{channel}/messages?{query}", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 200, body
    reply = json.loads(body)
    return [m["id"] for m in reply["messages"]], reply["hasMore"]


async def publish_and_wait(server: RunningServer, channel: str, count: int, prefix: str) -> list[int]:
    async with chat_client(server, "writer") as client:
        synced = await client.subscribe(channel)
        for n in range(count):
            await client.publish(channel, f"{prefix}{n}")
        ids: list[int] = []
        while len(ids) < count:
            event = await client.expect(protocol.CHAT_MESSAGE)
            ids.append(event["message"]["id"])
        assert ids == list(range(synced["lastMessageId"] + 1, synced["lastMessageId"] + count + 1))
        return ids


def test_sqlite_history_survives_a_restart(tmp_path: Path) -> None:
    database = tmp_path / "chat.sqlite3"
    with start_server("durable", f"history_path={database}") as server:
        asyncio.run(publish_and_wait(server, "durable", 60, "before-"))
        token = fetch_token(server.url, "reader")
        assert page_ids(server, token, "durable", "limit=100") == (list(range(1, 61)), False)
    with start_server("durable", f"history_path={database}") as server:
        token = fetch_token(server.url, "reader")
        assert page_ids(server, token, "durable", "limit=100") == (list(range(1, 61)), False)
        assert page_ids(server, token, "durable", "before=11&limit=10") == (list(range(1, 11)), False)
        assert asyncio.run(publish_and_wait(server, "durable", 5, "after-")) == list(range(61, 66))
        assert page_ids(server, token, "durable", "after=58&limit=100") == (list(range(59, 66)), False)


def test_http_paging_is_exact_against_a_live_server(server: RunningServer) -> None:
    asyncio.run(publish_and_wait(server, "paging", 45, "p"))
    token = fetch_token(server.url, "reader")
    collected: list[int] = []
    ids, more = page_ids(server, token, "paging", "limit=10")
    collected = ids
    while more:
        ids, more = page_ids(server, token, "paging", f"before={collected[0]}&limit=10")
        collected = ids + collected
    assert collected == list(range(1, 46))


def test_a_second_server_cannot_share_the_history_file(tmp_path: Path) -> None:
    database = tmp_path / "shared.sqlite3"
    with start_server("durable", f"history_path={database}"):
        result = subprocess.run(
            server_command("durable", [f"history_path={database}"]),
            capture_output=True,
            text=True,
            timeout=4 * TIMEOUT,
            cwd=REPO,
        )
    assert result.returncode == 2
    assert "another server is using this history file" in result.stderr

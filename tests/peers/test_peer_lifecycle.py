"""Peer start-up, graceful shutdown, the registry's install checks, and the history ring."""

from __future__ import annotations

import asyncio
import shutil
import signal
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.core.exceptions import TargetError, UsageError
from bench.harness.servers import READY_LINE as LISTENING
from server_under_test import peers
from server_under_test.peers.history_ring import HistoryRing
from server_under_test.peers.settings import PeerSettings
from tests.utils import TIMEOUT
from tests.utils.peers import PEER_NAMES, REFERENCE, open_client, recv, send, start_peer, subscribe, token_for


@pytest.mark.parametrize("name", [*PEER_NAMES, REFERENCE])
def test_sigterm_notifies_closes_1012_and_exits(name: str) -> None:
    server = start_peer(name)
    try:
        suffix = f"(preset {name})" if name == REFERENCE else f"(peer {name})"
        assert LISTENING.search(server.banner) and server.banner.endswith(suffix)

        async def scenario() -> None:
            clients = [await open_client(server, f"u{i}") for i in range(3)]
            for ws in clients:
                await subscribe(ws, "bye")
            server.send_signal(signal.SIGTERM)
            for ws in clients:
                notice = await recv(ws)
                assert (notice["type"], notice["kind"]) == ("NOTIFICATION", "shutdown")
                assert notice["retryAfterMs"] > 0
                with pytest.raises(ConnectionClosed):
                    await recv(ws)
                assert ws.close_code == 1012

        asyncio.run(scenario())
        assert server.wait(3 * TIMEOUT) == 0
    finally:
        server.stop()


async def read_all(ws: ClientConnection, count: int) -> list[str]:
    return [(await recv(ws))["message"]["clientMsgId"] for _ in range(count)]


@pytest.mark.parametrize("name", PEER_NAMES)
def test_a_stalled_reader_is_closed_1008_and_the_others_get_everything(name: str) -> None:
    server = start_peer(name, PeerSettings(port=0, max_buffered_bytes=256 * 1024))
    content, count = "z" * 60_000, 300  # ~18 MB: more than the loopback socket buffers hold

    async def scenario() -> None:
        stalled = await connect(f"{server.ws_url}?token={token_for(server, 'sloth')}", max_queue=1)
        fast, sender = await open_client(server, "hare"), await open_client(server, "sender")
        for ws in (stalled, fast, sender):
            await subscribe(ws, "firehose")

        reader = asyncio.create_task(read_all(fast, count))
        for seq in range(count):  # paced by the sender's own copy: the readers that read never fall behind
            await send(sender, type="PUBLISH", channelId="firehose", content=content, timestamp=0, clientMsgId=str(seq))
            assert (await recv(sender))["message"]["clientMsgId"] == str(seq)
        assert await reader == [str(seq) for seq in range(count)]
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(stalled.recv(), TIMEOUT)
        assert stalled.close_code == 1008 and stalled.close_reason == "slow consumer"
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=TIMEOUT).read().decode()
        assert "chat_slow_consumer_disconnects_total 1" in metrics
        await fast.close()
        await sender.close()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_registry_names_and_commands() -> None:
    assert peers.is_peer_name("peer:node-ws") and not peers.is_peer_name("default")
    assert peers.get_peer("peer:picows") is peers.get_peer("picows")
    with pytest.raises(UsageError, match="known: peer:node-ws, peer:picows"):
        peers.get_peer("peer:nginx")
    command = peers.PEERS["node-ws"].command()
    assert command[1].endswith("server.js") and "--jwt-secret" in command


def test_missing_dependencies_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "NODE_WS_DIR", peers.NODE_WS_DIR / "not-there")
    if shutil.which("node") is not None:
        with pytest.raises(TargetError, match="npm ci --prefix"):
            peers.get_peer("peer:node-ws").check_installed()
    missing = peers._python_modules_missing("no_such_module_here")()
    assert missing is not None and "pip install '.[peers]'" in missing


def test_history_ring_pages_exactly_after_eviction() -> None:
    ring = HistoryRing(10)
    assert ring.page(limit=5) == ([], False)
    for i in range(1, 26):
        ring.append({"id": i})

    def ids(page: tuple[list[dict[str, Any]], bool]) -> list[int]:
        return [m["id"] for m in page[0]]

    assert ring.first_id == 16
    assert ids(ring.page(limit=4)) == [22, 23, 24, 25] and ring.page(limit=4)[1]
    assert ids(ring.page(before=18, limit=4)) == [16, 17] and not ring.page(before=18, limit=4)[1]
    assert ids(ring.page(after=3, limit=3)) == [16, 17, 18]
    assert ring.page(after=25, limit=3) == ([], False)
    assert ring.page(before=16, limit=3) == ([], False)
    with pytest.raises(ValueError, match="does not follow"):
        ring.append({"id": 40})

"""The Python API the CLI and ``bench serve`` reuse: ChatServer startup / serve / shutdown in-process."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.core import protocol
from server_under_test.config import load_config
from server_under_test.server import ChatServer
from tests.utils import TIMEOUT, http_get


def test_chat_server_lifecycle_in_process() -> None:
    async def scenario() -> None:
        server = ChatServer(load_config("default", ["port=0", "shutdown_timeout_s=2"]))
        await server.startup()
        assert server.url.startswith("http://127.0.0.1:")
        serving = asyncio.create_task(server.serve())
        status, _ = await asyncio.to_thread(http_get, f"{server.url}/healthz")
        assert status == 200
        token = server.app.auth.mint("inproc")
        ws_url = server.url.replace("http", "ws") + f"/ws?token={token}"
        async with connect(ws_url, open_timeout=TIMEOUT) as ws:
            server.request_shutdown()
            await asyncio.wait_for(serving, TIMEOUT)
            shutting = asyncio.create_task(server.shutdown())
            notice = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert (notice["type"], notice["kind"]) == (protocol.NOTIFICATION, "shutdown")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == protocol.CLOSE_RESTART
            await asyncio.wait_for(shutting, TIMEOUT)

    asyncio.run(scenario())

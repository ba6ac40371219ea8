"""The Python API the CLI and ``bench serve`` reuse: ChatServer startup / serve / shutdown in-process,
and the loadcheck benchmark end to end on a tiny load."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.core import protocol
from server_under_test.config import load_config
from server_under_test.loadcheck.cli import main as loadcheck_main
from server_under_test.server import ChatServer
from tests.server_process import TIMEOUT, http_get


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


def test_loadcheck_runs_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--channels",
        "1",
        "--subscribers",
        "3",
        "--rate",
        "40",
        "--duration",
        "0.5",
        "--warmup",
        "0.2",
        "--drain",
        "1",
        "--json",
    ]
    assert loadcheck_main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["preset"] for row in rows] == ["naive", "default"]
    for row in rows:
        assert row["expected"] == row["sent"] * 3 > 0
        assert row["missing"] == 0
        assert row["p99_ms"] is not None and row["delivered_per_s"] > 0

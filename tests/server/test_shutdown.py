"""Graceful shutdown on SIGTERM / SIGINT: a NOTIFICATION of kind shutdown, close 1012, exit 0 in time."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed

from bench.core import protocol
from tests.utils import TIMEOUT, start_server
from tests.utils.chat_client import chat_client, stalled_reader


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_notifies_clients_closes_1012_and_exits_0(signum: int) -> None:
    with start_server("default", "shutdown_timeout_s=3", "shutdown_retry_after_ms=1500") as server:

        async def scenario() -> None:
            async with chat_client(server, "a") as first, chat_client(server, "b") as second:
                await first.subscribe("bye")
                await second.subscribe("bye")
                await first.drain(0.1)
                started = time.monotonic()
                server.send_signal(signum)
                for client in (first, second):
                    notice = await client.expect(protocol.NOTIFICATION)
                    assert notice["kind"] == "shutdown"
                    assert notice["retryAfterMs"] == 1500
                    with pytest.raises(ConnectionClosed) as closed:
                        while True:
                            await client.recv()
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == protocol.CLOSE_RESTART
                assert server.wait(3 * TIMEOUT) == 0
                assert time.monotonic() - started < 3 + TIMEOUT

        asyncio.run(scenario())
        assert "Traceback" not in server.log_text()


def test_shutdown_with_a_silent_client_respects_the_timeout() -> None:
    """A client that never answers the close handshake is cut after the timeout; the exit is still 0."""
    with start_server("default", "shutdown_timeout_s=1", "close_timeout_s=10") as server:
        stalled = stalled_reader(server, "mute", "quiet")
        try:
            time.sleep(0.2)
            started = time.monotonic()
            code = server.stop()
            assert code == 0
            assert time.monotonic() - started < 1 + TIMEOUT
        finally:
            stalled.close()

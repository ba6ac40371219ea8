"""The gevent WebSocket client against real servers: frames, fragments, ping/pong, close codes, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus

import gevent.event
import gevent.ssl
import pytest
import trustme
from gevent import monkey
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from bench.core.exceptions import ClientConnectionError
from bench.loadgen.wsclient import WebSocketConnection
from tests.utils import TIMEOUT

block = monkey.get_original("time", "sleep")  # Locust's import patches time.sleep


async def _script(ws: ServerConnection) -> None:
    """What the test server does, chosen by path."""
    path = ws.request.path if ws.request is not None else "/"
    if path == "/frames":
        await ws.send(json.dumps({"n": 1}))
        await ws.send(json.dumps([{"n": 2}, {"n": 3}]))
        await ws.send(iter(['{"n":', " 4}"]))  # one message in two fragments
        pong = ws.ping(b"are you there")
        await asyncio.wait_for(pong, TIMEOUT)
        await ws.send(json.dumps({"pong": True}))
        await ws.close(1012, "restart")
    elif path == "/ping-then-talk":
        await ws.ping(b"ping")
        await ws.send(json.dumps({"after": "ping"}))
        await ws.wait_closed()
    elif path == "/echo":
        async for message in ws:
            await ws.send(message)


def _refuse(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/private":
        return connection.respond(HTTPStatus.UNAUTHORIZED, "no token\n")
    return None


@contextlib.contextmanager
def _server(ssl_context: object = None) -> Iterator[str]:
    """A websockets server in a thread; yields its ws:// or wss:// base URL."""
    ready = threading.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["stop"], state["loop"] = stop, asyncio.get_running_loop()
        async with serve(_script, "127.0.0.1", 0, process_request=_refuse, ssl=ssl_context) as server:
            state["port"] = server.sockets[0].getsockname()[1]
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)
    try:
        yield f"{'wss' if ssl_context else 'ws'}://localhost:{state['port']}"
    finally:
        loop = state["loop"]
        loop.call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
        thread.join(TIMEOUT)


def _collect(ws: WebSocketConnection) -> tuple[list[object], ClientConnectionError]:
    received: list[object] = []
    with pytest.raises(ClientConnectionError) as closed:
        while True:
            received.extend(json.loads(payload) for payload in ws.recv_messages())
    return received, closed.value


def test_objects_arrays_fragments_ping_and_close_code() -> None:
    with _server() as base:
        ws = WebSocketConnection(f"{base}/frames", timeout=TIMEOUT)
        timing = ws.connect()
        assert timing.connect_us > 0 and timing.handshake_us > 0
        received, closed = _collect(ws)
    assert received == [{"n": 1}, [{"n": 2}, {"n": 3}], {"n": 4}, {"pong": True}]
    assert (closed.reason, closed.code, closed.detail) == ("closed_1012", 1012, "restart")
    assert not ws.open


def test_send_and_receive_with_debug_logging(caplog: pytest.LogCaptureFixture) -> None:
    with _server() as base, caplog.at_level(logging.INFO, logger="chatbench.ws"):
        ws = WebSocketConnection(f"{base}/echo", timeout=TIMEOUT, debug=True, label="alice")
        ws.connect()
        ws.send(b'{"type":"SUBSCRIBE","channelId":"c"}')
        assert ws.recv_messages() == [b'{"type":"SUBSCRIBE","channelId":"c"}']
        ws.close()
    lines = [record.getMessage() for record in caplog.records]
    assert 'WebSocket SEND alice: {"type":"SUBSCRIBE","channelId":"c"}' in lines
    assert 'WebSocket RECEIVE alice: {"type":"SUBSCRIBE","channelId":"c"}' in lines


def test_debug_is_off_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with _server() as base, caplog.at_level(logging.DEBUG, logger="chatbench.ws"):
        ws = WebSocketConnection(f"{base}/echo", timeout=TIMEOUT)
        ws.connect()
        ws.send("{}")
        ws.recv_messages()
        ws.close()
    assert not caplog.records


def _trusted_tls() -> tuple[object, gevent.ssl.SSLContext]:
    """A server TLS context for localhost and a client context that trusts it."""
    ca = trustme.CA()
    server_context = __import__("ssl").SSLContext(__import__("ssl").PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = gevent.ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


def test_wss_with_a_trusted_certificate() -> None:
    server_context, client_context = _trusted_tls()
    with _server(server_context) as base:
        ws = WebSocketConnection(f"{base}/echo", timeout=TIMEOUT, ssl_context=client_context)
        ws.connect()
        ws.send("[1]")
        assert ws.recv_messages() == [b"[1]"]
        ws.close()
        untrusted = WebSocketConnection(f"{base}/echo", timeout=TIMEOUT)
        with pytest.raises(ClientConnectionError) as failed:
            untrusted.connect()
    assert failed.value.reason == "tls"


def test_refused_upgrade_and_refused_connection_are_labelled() -> None:
    with _server() as base, pytest.raises(ClientConnectionError) as refused:
        WebSocketConnection(f"{base}/private", timeout=TIMEOUT).connect()
    assert refused.value.reason == "http_401"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClientConnectionError) as nobody:
        WebSocketConnection(f"ws://127.0.0.1:{port}/ws", timeout=TIMEOUT).connect()
    assert nobody.value.reason == "refused"


def test_abort_drops_the_connection_for_a_blocked_reader() -> None:
    with _server() as base:
        ws = WebSocketConnection(f"{base}/echo", timeout=TIMEOUT)
        ws.connect()
        reader = gevent.spawn(ws.recv_messages)
        gevent.sleep(0.05)
        ws.abort()
        reader.join(TIMEOUT)
    assert isinstance(reader.exception, ClientConnectionError)
    assert reader.exception.reason in ("reset", "eof")


def _read_through_reader(ws: WebSocketConnection) -> tuple[list[object], gevent.event.AsyncResult]:
    """Hand ``ws`` to the process's reader; the messages it delivers and the loss it reports."""
    received: list[object] = []
    lost = gevent.event.AsyncResult()
    ws.start_reading(lambda payloads, _arrived: received.extend(json.loads(p) for p in payloads), lost.set)
    return received, lost


@pytest.mark.parametrize("secure", [False, True], ids=["reader", "tls-greenlet"])
def test_start_reading_delivers_everything_then_the_close(secure: bool) -> None:
    server_context, client_context = _trusted_tls() if secure else (None, None)
    with _server(server_context) as base:
        ws = WebSocketConnection(f"{base}/frames", timeout=TIMEOUT, ssl_context=client_context)
        ws.connect()
        received, lost = _read_through_reader(ws)
        closed = lost.get(timeout=TIMEOUT)
    assert received == [{"n": 1}, [{"n": 2}, {"n": 3}], {"n": 4}, {"pong": True}]  # the ping was answered
    assert (closed.reason, closed.code, closed.detail) == ("closed_1012", 1012, "restart")
    assert not ws.open


def test_reader_reports_an_abort_as_a_loss_and_a_close_as_none() -> None:
    with _server() as base:
        dropped = WebSocketConnection(f"{base}/echo", timeout=TIMEOUT)
        dropped.connect()
        closed = WebSocketConnection(f"{base}/echo", timeout=TIMEOUT)
        closed.connect()
        echoes, lost = _read_through_reader(dropped)
        _, not_lost = _read_through_reader(closed)
        dropped.send("[1]")
        gevent.sleep(0.2)
        assert echoes == [[1]]
        dropped.abort()
        closed.close()
        assert lost.get(timeout=TIMEOUT).reason == "reset"
        gevent.sleep(0.1)
    assert not not_lost.ready()
    with pytest.raises(ClientConnectionError):
        dropped.send("[2]")


ECHO_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
"""


def test_a_read_is_timed_when_the_kernel_received_it_not_when_the_reader_got_to_it() -> None:
    """The echo (from a server in another process) arrives while this one is blocked for 100 ms: it is
    timed at its arrival."""
    server = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ws = WebSocketConnection(f"ws://127.0.0.1:{int(server.stdout.readline())}/", timeout=TIMEOUT)
        ws.connect()
        reads: list[tuple[int | None, int]] = []
        ws.start_reading(lambda _payloads, arrived: reads.append((arrived, time.time_ns() // 1000)), print)
        sent = time.time_ns() // 1000
        ws.send("[1]")
        block(0.1)  # blocks the loop (not gevent's sleep): the reader cannot run
        gevent.sleep(0.1)
        ws.close()
    finally:
        server.kill()
        server.wait(TIMEOUT)
    [(arrived, read)] = reads
    if arrived is None:
        pytest.skip("no kernel receive timestamps on this system (SO_TIMESTAMPNS)")
    assert sent <= arrived < sent + 50_000 and read - arrived >= 90_000


def test_a_sender_holding_the_lock_does_not_stall_the_reader() -> None:
    """A publisher blocked in send (holding the send lock) must not stop every socket's reads."""
    with _server() as base:
        ws = WebSocketConnection(f"{base}/ping-then-talk", timeout=TIMEOUT)
        ws.connect()
        ws._send_lock.acquire()  # as a sender stuck on a full socket buffer would
        received, _ = _read_through_reader(ws)
        with gevent.Timeout(TIMEOUT):
            while not received:
                gevent.sleep(0.01)
        ws._send_lock.release()  # the pong waited for the lock; the reader did not
        ws.close()
    assert received == [{"after": "ping"}]

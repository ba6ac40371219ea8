"""History pages per second over keep-alive against one connection per page (``Connection: close``).

    python -m server_under_test.pagebench --url http://127.0.0.1:8765 [--seconds 10] [--connections 4] [--close]

Fills a channel with ``--messages`` messages over the WebSocket, then ``--connections`` clients page it
backwards (``before=ID&limit=20``, wrapping around) for ``--seconds``, each waiting for its page before
asking the next one (no pipelining). With ``--close`` every page opens a new TCP connection, as a server
that answers ``Connection: close`` forces. Prints pages/s and the p50/p99 page latency. Bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

from bench.core import protocol
from server_under_test.backends import loop_factory

CHANNEL = "pagebench"
PAGE = 20


async def fetch(host: str, port: int, head: bytes) -> tuple[int, bytes]:
    """One request on a new connection (the ``--close`` way)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head)
        return await read_response(reader)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def request_head(host: str, path: str, token: str, close: bool) -> bytes:
    connection = "close" if close else "keep-alive"
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: {connection}\r\n\r\n"
    ).encode()


async def fill(url: str, token: str, count: int) -> int:
    """Publish ``count`` messages into the channel; the last id."""
    ws_url = url.replace("http", "ws", 1) + f"/ws?token={token}"
    async with connect(ws_url, max_size=None) as ws:
        await ws.send(json.dumps(protocol.subscribe(CHANNEL, 0)))
        last = 0
        for n in range(count):
            await ws.send(json.dumps(protocol.publish(CHANNEL, f"page filler {n}", 0, f"f{n}")))
        while last < count:
            for message in protocol.decode_frame(await asyncio.wait_for(ws.recv(), 10)):
                if message["type"] == protocol.CHAT_MESSAGE:
                    last = message["message"]["id"]
    return last


async def client(host: str, port: int, token: str, newest: int, until: float, close: bool) -> list[float]:
    latencies: list[float] = []
    reader, writer = (None, None) if close else await asyncio.open_connection(host, port)
    before = newest + 1
    try:
        while time.monotonic() < until:
            head = request_head(host, f"/channels/{CHANNEL}/messages?before={before}&limit={PAGE}", token, close)
            started = time.perf_counter()
            if reader is None or writer is None:
                status, body = await fetch(host, port, head)
            else:
                writer.write(head)
                status, body = await read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise SystemExit(f"page answered {status}: {body[:200]!r}")
            ids = [message["id"] for message in json.loads(body)["messages"]]
            before = ids[0] if ids and ids[0] > 1 else newest + 1
    finally:
        if writer is not None:
            writer.close()
    return latencies


async def run(args: argparse.Namespace) -> None:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    basic = base64.b64encode(b"pagebench:" + args.password.encode()).decode()
    _, body = await fetch(host, port, f"GET /auth/token HTTP/1.1\r\nAuthorization: Basic {basic}\r\n\r\n".encode())
    token = json.loads(body)["token"]
    newest = await fill(args.url, token, args.messages)
    until = time.monotonic() + args.seconds
    runs = [client(host, port, token, newest, until, args.close) for _ in range(args.connections)]
    latencies = [latency for run in await asyncio.gather(*runs) for latency in run]
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    mode = "connection per page" if args.close else "keep-alive"
    print(
        f"{mode}: {len(latencies) / args.seconds:,.0f} pages/s over {args.connections} clients, "
        f"p50 {statistics.median(latencies) * 1000:.2f} ms, p99 {p99:.2f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--password", default="bench")
    parser.add_argument("--close", action="store_true", help="a new connection for every page")
    args = parser.parse_args(argv)
    args.seconds = min(args.seconds, 120.0)
    _, factory = loop_factory("uvloop")
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run(args))


if __name__ == "__main__":
    main()

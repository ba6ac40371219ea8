"""Bytes per idle subscribed connection on a chat server: the server process's RSS delta at N connections.

    python -m server_under_test.peers.memcheck --server default|naive|peer:node-ws|peer:picows --conns 5000

Starts the server on port 0, opens ``--warm`` connections first (so that one-time costs such as allocator
arenas, JIT and import-time caches are in the baseline), samples the server's RSS, then opens ``--conns``
more, each subscribed to a channel of ``--per-channel`` members, lets the presence traffic drain, samples
again and divides. Every client keeps reading, so nothing piles up in the server's send buffers. The
soft open-file limit is raised to the hard limit first (the server inherits it). The same delta of this
client process (websockets asyncio) is reported beside it, for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import resource
import time
from dataclasses import asdict, dataclass

import psutil
import uvloop
from websockets.asyncio.client import ClientConnection, connect

from bench.core import protocol
from bench.core.exceptions import UsageError
from server_under_test.auth import Authenticator
from server_under_test.config import DEFAULT_JWT_SECRET, DEFAULT_PASSWORD
from server_under_test.peers import running

MAX_CONNS = 50_000


@dataclass(slots=True)
class MemoryResult:
    server: str
    connections: int
    per_channel: int
    server_rss_before: int
    server_rss_after: int
    server_bytes_per_conn: float
    client_bytes_per_conn: float


def raise_open_file_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; UsageError if that is still below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        raise UsageError(f"{needed} connections need {needed} file descriptors; the hard limit is {hard}")
    return hard


async def drain(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


class Crowd:
    """Idle subscribed clients that keep reading whatever the server sends them."""

    def __init__(self, ws_url: str, per_channel: int) -> None:
        self.ws_url = ws_url
        self.per_channel = per_channel
        self.auth = Authenticator(secret=DEFAULT_JWT_SECRET, password=DEFAULT_PASSWORD, ttl_s=3600)
        self.clients: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.gate = asyncio.Semaphore(100)

    async def join(self, index: int) -> None:
        async with self.gate:
            ws = await connect(
                f"{self.ws_url}/ws?token={self.auth.mint(f'idle{index}')}", compression=None, open_timeout=60
            )
            await ws.send(protocol.orjson_dumps(protocol.subscribe(f"idle-{index // self.per_channel}", 0)).decode())
            while True:  # presence events may come first
                frames = protocol.decode_frame(await asyncio.wait_for(ws.recv(), 60))
                if any(msg.get("type") == protocol.SUBSCRIBED for msg in frames):
                    break
        self.clients.append(ws)
        self.readers.append(asyncio.create_task(drain(ws)))

    async def grow(self, count: int) -> None:
        start = len(self.clients)
        await asyncio.gather(*(self.join(start + i) for i in range(count)))

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.clients), return_exceptions=True)


async def settle(process: psutil.Process, seconds: float) -> int:
    """Wait, then the RSS once it has stopped moving by more than 1 % between samples (bounded)."""
    await asyncio.sleep(seconds)
    previous = process.memory_info().rss
    for _ in range(10):
        await asyncio.sleep(0.3)
        current = process.memory_info().rss
        if abs(current - previous) <= previous // 100:
            return current
        previous = current
    return previous


async def measure_crowd(ws_url: str, server_pid: int, conns: int, warm: int, per_channel: int) -> tuple[int, int, int]:
    server, me = psutil.Process(server_pid), psutil.Process()
    crowd = Crowd(ws_url, per_channel)
    try:
        await crowd.grow(warm)
        before, client_before = await settle(server, 1.0), me.memory_info().rss
        await crowd.grow(conns)
        after, client_after = await settle(server, 2.0), me.memory_info().rss
    finally:
        await crowd.close()
    return before, after, client_after - client_before


def measure(server: str, conns: int = 5000, warm: int = 100, per_channel: int = 50) -> MemoryResult:
    if not 1 <= conns <= MAX_CONNS:
        raise UsageError(f"--conns must be 1 to {MAX_CONNS}")
    raise_open_file_limit(2 * (conns + warm) + 256)  # both ends live in processes that share the limit
    with running(server) as proc:
        assert proc.pid is not None
        ws_url = proc.url.replace("http", "ws", 1)
        before, after, client_delta = uvloop.run(measure_crowd(ws_url, proc.pid, conns, warm, per_channel))
    return MemoryResult(server, conns, per_channel, before, after, (after - before) / conns, client_delta / conns)


def render(result: MemoryResult) -> str:
    return (
        f"{result.server}: {result.connections} idle subscribed connections ({result.per_channel} per channel): "
        f"server RSS {result.server_rss_before / 2**20:.1f} -> {result.server_rss_after / 2**20:.1f} MiB, "
        f"{result.server_bytes_per_conn / 1024:.1f} KiB per connection "
        f"(client, websockets asyncio: {result.client_bytes_per_conn / 1024:.1f} KiB per connection)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", action="append", help="preset or peer:NAME (repeatable); default: all four")
    parser.add_argument("--conns", type=int, default=5000)
    parser.add_argument("--warm", type=int, default=100, help="connections opened before the baseline")
    parser.add_argument("--per-channel", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    servers = args.server or ["default", "naive", "peer:node-ws", "peer:picows"]
    started = time.monotonic()
    ctx = multiprocessing.get_context("spawn")  # a fresh client process per server: its RSS delta is its own
    results = []
    for server in servers:
        with ctx.Pool(1) as pool:
            results.append(pool.apply(measure, (server, args.conns, args.warm, args.per_channel)))
    if args.json:
        print(json.dumps([asdict(result) for result in results], indent=2))
    else:
        print("\n".join(render(result) for result in results))
        print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()

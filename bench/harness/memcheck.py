"""Bytes per idle subscribed connection on a chat server: the server process's RSS delta at N connections.

``bench perf --only memory`` runs it for each config (``perf_memory``).

Starts the server on port 0, opens ``--warm`` connections first (so that one-time costs such as allocator
arenas, JIT and import-time caches are in the baseline), samples the server's RSS, then opens ``--conns``
more, each subscribed to a channel of ``--per-channel`` members, lets the presence traffic drain, samples
again and divides. Every client keeps reading, so nothing piles up in the server's send buffers. The
soft open-file limit is raised to the hard limit first (the server inherits it). The same delta of this
client process (websockets asyncio) is reported beside it, for scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from dataclasses import dataclass

import psutil
import uvloop
from websockets.asyncio.client import ClientConnection, connect

from bench.core import protocol, tokens
from bench.core.exceptions import UsageError
from bench.harness.servers import resolve_spec, running

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

    def __init__(self, ws_url: str, per_channel: int, jwt_secret: str) -> None:
        self.ws_url = ws_url
        self.per_channel = per_channel
        self.jwt_secret = jwt_secret
        self.clients: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.gate = asyncio.Semaphore(100)

    async def join(self, index: int) -> None:
        async with self.gate:
            ws = await connect(
                f"{self.ws_url}/ws?token={tokens.mint(f'idle{index}', self.jwt_secret)}",
                compression=None,
                open_timeout=60,
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


async def measure_crowd(
    ws_url: str, server_pid: int, conns: int, warm: int, per_channel: int, jwt_secret: str
) -> tuple[int, int, int]:
    server, me = psutil.Process(server_pid), psutil.Process()
    crowd = Crowd(ws_url, per_channel, jwt_secret)
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
    spec = resolve_spec(server)
    with running(spec) as proc:
        assert proc.pid is not None
        ws_url = proc.url.replace("http", "ws", 1)
        crowd = measure_crowd(ws_url, proc.pid, conns, warm, per_channel, spec.jwt_secret)
        before, after, client_delta = uvloop.run(crowd)
    return MemoryResult(server, conns, per_channel, before, after, (after - before) / conns, client_delta / conns)

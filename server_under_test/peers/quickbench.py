"""A quick side-by-side load check of chat servers with a small asyncio websockets client.

    python -m server_under_test.peers.quickbench --servers default,naive,peer:node-ws,peer:picows \\
        --channels 20 --subscribers 50 --rate 200 --duration 10

For each server in turn: start it on port 0, connect ``channels x subscribers`` clients (tokens minted with
the shared JWT secret, so every server accepts them), subscribe each to its channel, and let one client per
channel publish on a fixed schedule (``rate`` messages per second over all channels). Every receiver
records the latency from the message's *intended* send time (no coordinated omission) for messages
intended inside the measurement window; a delivery counts only if it arrives before the drain ends.
Prints delivered messages per second, p50/p99/max latency, missing deliveries and both processes' CPU.

This is a bounded sanity check beside ``bench perf``, not a substitute for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import time
from dataclasses import asdict, dataclass
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier
from typing import Any

import orjson
import psutil
import uvloop
from websockets.asyncio.client import ClientConnection, connect

from bench.core import protocol
from bench.core.histogram import Histogram
from server_under_test.auth import Authenticator
from server_under_test.config import DEFAULT_JWT_SECRET, DEFAULT_PASSWORD
from server_under_test.peers import running


@dataclass(frozen=True, slots=True)
class LoadPlan:
    channels: int = 20
    subscribers: int = 50
    rate: float = 200.0  # messages per second, over all channels
    duration: float = 10.0
    warmup: float = 2.0
    drain: float = 3.0
    content_bytes: int = 64


@dataclass(slots=True)
class LoadResult:
    server: str
    published: int
    expected: int
    delivered: int
    delivered_per_s: float
    missing: int
    latency_ms: dict[str, float | int]
    server_cpu_percent: float
    client_cpu_percent: float


def now_us() -> int:
    return time.time_ns() // 1000


class Receiver:
    """Counts and times the CHAT_MESSAGEs intended inside the window ``[start_us, end_us)``."""

    def __init__(self) -> None:
        self.hist = Histogram()
        self.delivered = 0
        self.start_us = 1 << 62
        self.end_us = 1 << 62

    async def consume(self, ws: ClientConnection) -> None:
        record, loads = self.hist.record, orjson.loads
        with contextlib.suppress(Exception):
            async for frame in ws:
                received = now_us()
                for msg in protocol.decode_frame(frame, loads):
                    if msg.get("type") != protocol.CHAT_MESSAGE:
                        continue
                    intended = int(msg["message"]["clientMsgId"].rsplit(":", 3)[2])
                    if self.start_us <= intended < self.end_us:
                        self.delivered += 1
                        record(received - intended)


async def open_subscriber(ws_url: str, token: str, channel: str) -> ClientConnection:
    ws = await connect(f"{ws_url}/ws?token={token}", compression=None, max_queue=None, open_timeout=30)
    await ws.send(orjson.dumps(protocol.subscribe(channel, 0)).decode())
    while True:
        reply = protocol.decode_frame(await asyncio.wait_for(ws.recv(), 30))
        if any(msg.get("type") == protocol.SUBSCRIBED for msg in reply):
            return ws


async def publish_on_schedule(
    ws: ClientConnection, channel: str, schedule: Schedule, first_due: float, receiver: Receiver, content: str
) -> int:
    """Send on the schedule ``first_due + k * interval``; return how many were intended inside the window."""
    loop = asyncio.get_running_loop()
    seq = in_window = 0
    while (due := first_due + seq * schedule.interval) < schedule.stop:
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        intended = schedule.wall_us(due)
        in_window += receiver.start_us <= intended < receiver.end_us
        tag = protocol.format_tag(channel, seq, intended, now_us())
        await ws.send(orjson.dumps(protocol.publish(channel, content, intended // 1000, tag)).decode())
        seq += 1
    return in_window


@dataclass(frozen=True, slots=True)
class Schedule:
    """The publishers' clock: loop time ``stop`` ends it; ``offset_us`` maps loop time to the wall clock."""

    interval: float
    stop: float
    offset_us: int

    def wall_us(self, loop_time: float) -> int:
        return int(loop_time * 1e6) + self.offset_us


@dataclass(frozen=True, slots=True)
class Share:
    """One client process's part of the load: its channels, and the start barrier shared by all."""

    ws_url: str
    plan: LoadPlan
    channels: list[int]
    ready: Barrier
    t0_wall: Synchronized[float]


async def run_share(share: Share) -> dict[str, Any]:
    """Connect this share's subscribers, wait for every process, publish and receive; encode the outcome."""
    plan = share.plan
    auth = Authenticator(secret=DEFAULT_JWT_SECRET, password=DEFAULT_PASSWORD, ttl_s=3600)
    receiver = Receiver()
    gate = asyncio.Semaphore(50)

    async def join(channel: int, member: int) -> ClientConnection:
        async with gate:
            token = auth.mint(f"user{channel}-{member}")
            return await open_subscriber(share.ws_url, token, f"load-{channel}")

    joins = [join(c, m) for c in share.channels for m in range(plan.subscribers)]
    clients = await asyncio.gather(*joins)
    readers = [asyncio.create_task(receiver.consume(ws)) for ws in clients]
    await asyncio.to_thread(share.ready.wait)  # everyone connected; the coordinator sets t0 ...
    await asyncio.to_thread(share.ready.wait)  # ... and releases us
    loop = asyncio.get_running_loop()
    offset_us = now_us() - int(loop.time() * 1e6)
    t0 = share.t0_wall.value - offset_us / 1e6  # the shared wall-clock start, in this loop's time
    window_start = t0 + plan.warmup
    window_end = window_start + plan.duration
    schedule = Schedule(plan.channels / plan.rate, window_end, offset_us)
    receiver.start_us, receiver.end_us = schedule.wall_us(window_start), schedule.wall_us(window_end)
    content = "x" * plan.content_bytes
    publishers = []
    for index, channel in enumerate(share.channels):
        first_due = t0 + channel * schedule.interval / plan.channels
        publishers.append(
            publish_on_schedule(
                clients[index * plan.subscribers], f"load-{channel}", schedule, first_due, receiver, content
            )
        )
    tasks = [asyncio.create_task(coro) for coro in publishers]
    me = psutil.Process()
    await asyncio.sleep(max(0.0, window_start - loop.time()))
    cpu0 = sum(me.cpu_times()[:2])
    await asyncio.sleep(max(0.0, window_end - loop.time()))
    cpu1 = sum(me.cpu_times()[:2])
    in_window = sum(await asyncio.gather(*tasks))
    await asyncio.sleep(plan.drain)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
    return {
        "published": in_window,
        "delivered": receiver.delivered,
        "hist": receiver.hist.encode(),
        "cpu_s": cpu1 - cpu0,
    }


def share_main(share: Share, results: Queue[dict[str, Any]]) -> None:
    """Entry point of one client process."""
    results.put(uvloop.run(run_share(share)))


def measure(server: str, plan: LoadPlan, procs: int = 1) -> LoadResult:
    """Start ``server``, run the plan against it from ``procs`` client processes, stop it."""
    ctx = multiprocessing.get_context("spawn")
    ready, t0_wall, results = ctx.Barrier(procs + 1), ctx.Value("d", 0.0), ctx.Queue()
    with running(server) as proc:
        assert proc.pid is not None
        ws_url = proc.url.replace("http", "ws", 1)
        workers = [
            ctx.Process(
                target=share_main,
                args=(Share(ws_url, plan, list(range(i, plan.channels, procs)), ready, t0_wall), results),
                daemon=True,
            )
            for i in range(procs)
        ]
        for worker in workers:
            worker.start()
        ready.wait(timeout=120)  # every client connected and subscribed
        t0_wall.value = time.time() + 0.3
        ready.wait(timeout=10)
        target = psutil.Process(proc.pid)
        time.sleep(max(0.0, t0_wall.value + plan.warmup - time.time()))
        cpu0, wall0 = sum(target.cpu_times()[:2]), time.monotonic()
        time.sleep(max(0.0, t0_wall.value + plan.warmup + plan.duration - time.time()))
        cpu1, wall1 = sum(target.cpu_times()[:2]), time.monotonic()
        outcomes = [results.get(timeout=plan.drain + 60) for _ in workers]
        for worker in workers:
            worker.join(timeout=10)
    hist = Histogram()
    for outcome in outcomes:
        hist.merge(Histogram.decode(outcome["hist"]))
    published = sum(outcome["published"] for outcome in outcomes)
    delivered = sum(outcome["delivered"] for outcome in outcomes)
    return LoadResult(
        server=server,
        published=published,
        expected=published * plan.subscribers,
        delivered=delivered,
        delivered_per_s=delivered / plan.duration,
        missing=published * plan.subscribers - delivered,
        latency_ms=hist.summary_ms(),
        server_cpu_percent=100 * (cpu1 - cpu0) / (wall1 - wall0),
        client_cpu_percent=100 * sum(outcome["cpu_s"] for outcome in outcomes) / plan.duration,
    )


def render(results: list[LoadResult], plan: LoadPlan) -> str:
    lines = [
        f"{plan.channels} channels x {plan.subscribers} subscribers, {plan.rate:g} msg/s published, "
        f"{plan.duration:g} s window, latency from the intended send time",
        f"{'server':<14}{'delivered/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'missing':>9}"
        f"{'srv CPU%':>10}{'cli CPU%':>10}",
    ]
    for r in results:
        lat = r.latency_ms
        lines.append(
            f"{r.server:<14}{r.delivered_per_s:>12.0f}{lat['p50']:>9.2f}{lat['p99']:>9.2f}{lat['max']:>9.2f}"
            f"{r.missing:>9}{r.server_cpu_percent:>10.0f}{r.client_cpu_percent:>10.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", default="default,naive,peer:node-ws,peer:picows")
    defaults = LoadPlan()
    for name in ("channels", "subscribers"):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name))
    for name in ("rate", "duration", "warmup", "drain"):
        parser.add_argument(f"--{name}", type=float, default=getattr(defaults, name))
    parser.add_argument("--procs", type=int, default=1, help="client processes (channels are split among them)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    plan = LoadPlan(
        channels=args.channels,
        subscribers=args.subscribers,
        rate=args.rate,
        duration=min(args.duration, 60.0),
        warmup=args.warmup,
        drain=args.drain,
    )
    results = [
        measure(server.strip(), plan, max(1, args.procs)) for server in args.servers.split(",") if server.strip()
    ]
    if args.json:
        print(json.dumps({"plan": asdict(plan), "results": [asdict(r) for r in results]}, indent=2))
    else:
        print(render(results, plan))


if __name__ == "__main__":
    main()

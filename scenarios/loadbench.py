"""Benchmark (not a test): messages received per second by one Locust process, ours vs websocket-client.

    python -m scenarios.loadbench --users 10 --batch 1 --rates 10000,20000,40000,80000 --step-seconds 4

A firehose in this process (asyncio + websockets) plays the chat server: it answers SUBSCRIBE with
SUBSCRIBED and then streams tagged CHAT_MESSAGEs at a stepped total rate, ``--batch`` messages per
frame (1: single-object frames; more: the batched arrays a batching server sends). One Locust
process (``--processes`` not used) runs the receiving users: ours (``scenarios/publish.py`` with
subscribers only: decode, fan-out histogram, integrity) or the baseline
(``scenarios/baseline_websocket_client.py``: websocket-client, json, one Locust event per message).
Per step it reports what the firehose could send (websockets' send waits while the client's socket
buffer is full, so this is what the client absorbed) and the Locust process's CPU. The figure of
merit is the highest received rate with that process below ``--cpu-limit`` percent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil
from websockets.asyncio.server import ServerConnection, serve

from bench.core.schema import SATURATION_PERCENT

REPO = Path(__file__).resolve().parent.parent
CLIENTS = {
    "ours": ["scenarios/publish.py", "--channels", "1", "--publishers", "0", "--auth", "none"],
    "websocket-client": ["scenarios/baseline_websocket_client.py", "--baseline-auth", "none"],
}
SIZES = {"ours": "--subscribers-per-channel", "websocket-client": None}
TICK_S = 0.01
CONTENT = "x" * 100


@dataclass
class Step:
    rate: int
    received_per_s: float
    cpu_percent: float

    def describe(self) -> str:
        return (
            f"target {self.rate:>8}/s  received {self.received_per_s:>10.0f}/s  cpu {self.cpu_percent:5.1f}%"
            f"  {self.per_cpu_second:>9.0f} msg per cpu-s"
        )

    @property
    def per_cpu_second(self) -> float:
        """Messages received per second of the Locust process's CPU time (its efficiency)."""
        return self.received_per_s / (self.cpu_percent / 100) if self.cpu_percent > 1 else 0.0


class Firehose:
    """Streams numbered CHAT_MESSAGEs to every subscribed connection at ``rate`` messages/s in total."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.rate = 0
        self.sent = 0
        self.connections: dict[ServerConnection, int] = {}

    async def handler(self, ws: ServerConnection) -> None:
        request = orjson.loads(await ws.recv())
        channel = request.get("channelId", "bench-0")
        reply = {
            "type": "SUBSCRIBED",
            "channelId": channel,
            "lastMessageId": 0,
            "online": [],
            "timestamp": int(time.time() * 1000),
        }
        await ws.send(orjson.dumps(reply).decode())
        self.connections[ws] = 0
        with contextlib.suppress(Exception):
            await ws.wait_closed()
        self.connections.pop(ws, None)

    def frames(self, ws: ServerConnection, count: int) -> list[str]:
        now_us = time.time_ns() // 1000
        first = self.connections[ws]
        self.connections[ws] = first + count
        head = '{"type":"CHAT_MESSAGE","channelId":"bench-0","message":{"id":'
        middle = (
            f',"senderId":"fire","messageType":"TEXT","content":"{CONTENT}","timestamp":{now_us // 1000},'
            f'"serverTimestamp":{now_us // 1000},"clientMsgId":"fire:'
        )
        tail = f':{now_us}:{now_us}"}},"timestamp":{now_us // 1000}}}'
        messages = [f"{head}{n}{middle}{n}{tail}" for n in range(first + 1, first + count + 1)]
        if self.batch <= 1:
            return messages
        return ["[" + ",".join(messages[i : i + self.batch]) + "]" for i in range(0, count, self.batch)]

    async def pump(self) -> None:
        carry: dict[ServerConnection, float] = {}
        next_at = time.perf_counter()
        while True:
            next_at += TICK_S
            connections = list(self.connections)
            if connections and self.rate:
                share = self.rate * TICK_S / len(connections)
                for ws in connections:
                    due = carry.get(ws, 0.0) + share
                    count = int(due)
                    carry[ws] = due - count
                    if count and ws in self.connections:
                        try:
                            for frame in self.frames(ws, count):
                                await ws.send(frame)
                        except Exception:
                            continue
                        self.sent += count
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(client: str, users: int, batch: int, rates: list[int], step_s: float) -> list[Step]:
    firehose = Firehose(batch)
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)  # peers vanish at the end
    async with serve(firehose.handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        run_time = int(len(rates) * step_s + 15)
        locustfile, *extra = CLIENTS[client]
        command = [
            sys.executable, "-m", "locust", "-f", str(REPO / locustfile), "--host", f"http://127.0.0.1:{port}",
            "--headless", "-u", str(users), "-r", str(users), "-t", f"{run_time}s", "--only-summary",
            *extra,
        ]  # fmt: skip
        if SIZES[client]:
            command += [str(SIZES[client]), str(users)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        pump = asyncio.create_task(firehose.pump())
        steps: list[Step] = []
        try:
            deadline = time.time() + 30
            while len(firehose.connections) < users and time.time() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            locust = psutil.Process(process.pid)
            for rate in rates:
                firehose.rate = rate
                await asyncio.sleep(min(1.0, step_s / 4))  # settle at the new rate
                sent, cpu, wall = firehose.sent, cpu_seconds(locust), time.perf_counter()
                await asyncio.sleep(step_s)
                elapsed = time.perf_counter() - wall
                steps.append(Step(rate, (firehose.sent - sent) / elapsed, 100 * (cpu_seconds(locust) - cpu) / elapsed))
                print(f"  {client:17} batch {batch:3}  {steps[-1].describe()}", flush=True)
        finally:
            pump.cancel()
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    return steps


KEPT_UP = 0.95  # a step counts when the client received at least this share of the offered rate


def valid_steps(steps: list[Step], cpu_limit: float) -> list[Step]:
    """Steps where the client kept up with the offered rate and stayed below the CPU limit.

    A step the client fell behind on says little: its CPU figure mixes catching up, backpressure
    and the firehose competing for the same cores."""
    return [s for s in steps if s.cpu_percent < cpu_limit and s.received_per_s >= KEPT_UP * s.rate]


def best_below(steps: list[Step], cpu_limit: float) -> Step | None:
    return max(valid_steps(steps, cpu_limit), key=lambda step: step.received_per_s, default=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scenarios.loadbench", description=__doc__.split("\n")[0])
    parser.add_argument("--client", choices=("both", *CLIENTS), default="both")
    parser.add_argument("--users", type=int, default=10, help="receiving users (connections) in the process")
    parser.add_argument("--batch", type=int, default=1, help="messages per frame (1: single objects)")
    parser.add_argument("--rates", default="5000,10000,20000,40000,80000,120000,160000",
                        help="comma-separated total message rates to step through")  # fmt: skip
    parser.add_argument("--step-seconds", type=float, default=4.0)
    parser.add_argument("--cpu-limit", type=float, default=SATURATION_PERCENT)
    args = parser.parse_args(argv)
    rates = [int(rate) for rate in args.rates.split(",")]
    clients = list(CLIENTS) if args.client == "both" else [args.client]
    print(f"loadbench: {args.users} users, batch {args.batch}, pid {os.getpid()}, {psutil.cpu_count()} cpus")
    best: dict[str, Step | None] = {}
    efficiency: dict[str, float] = {}
    for client in clients:
        steps = asyncio.run(measure(client, args.users, args.batch, rates, args.step_seconds))
        best[client] = best_below(steps, args.cpu_limit)
        kept_up = [step.per_cpu_second for step in valid_steps(steps, args.cpu_limit) if step.cpu_percent > 5]
        efficiency[client] = max(kept_up, default=0.0)
    print(f"\nhighest rate received in full with the Locust process below {args.cpu_limit:.0f}% CPU:")
    for client, step in best.items():
        text = "none" if step is None else f"{step.received_per_s:,.0f} msg/s at {step.cpu_percent:.0f}% CPU"
        print(f"  {client:17} {text};  {efficiency[client]:,.0f} msg per CPU-second"
              f" (~{efficiency[client] * args.cpu_limit / 100:,.0f} msg/s at {args.cpu_limit:.0f}%)")  # fmt: skip
    ours, theirs = best.get("ours"), best.get("websocket-client")
    if ours and theirs and theirs.received_per_s:
        print(f"  ratio ours / websocket-client: {ours.received_per_s / theirs.received_per_s:.1f}x measured rate,"
              f" {efficiency['ours'] / max(1.0, efficiency['websocket-client']):.1f}x per CPU-second")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

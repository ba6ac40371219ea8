"""Client efficiency (``bench perf --only loadgen``): messages received per second by one Locust process,
ours against websocket-client.

A firehose in this process (asyncio + websockets) plays the chat server: it answers SUBSCRIBE with
SUBSCRIBED and then streams tagged CHAT_MESSAGEs at a stepped total rate, ``--batch`` messages per
frame (1: single-object frames; more: the batched arrays a batching server sends). One Locust
process runs the receiving users: ours (``scenarios/publish.py`` with
subscribers only: decode, fan-out histogram, integrity) or the baseline
(``scenarios/baseline_websocket_client.py``: websocket-client, json, one Locust event per message).
Per step it reports what the firehose could send (websockets' send waits while the client's socket
buffer is full, so this is what the client absorbed) and the Locust process's CPU. The figure of
merit is the highest received rate with that process below the saturation threshold.

``protocol`` makes the firehose speak another wire instead (``socketio``, ``stomp``, ``mqtt``: their
login and subscription handshakes, then the tagged payloads in their frames, one message per frame),
so that an adapter's client cost per message can be set beside the chat wire's.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
import psutil
from websockets.asyncio.server import ServerConnection, serve

from bench.core import mqtt, socketio, stomp
from bench.harness.locust import SCENARIOS_DIR, AuthSpec, LoadSpec, LocustProcess


def _ours(users: int) -> dict[str, str]:
    return {"channels": "1", "publishers": "0", "subscribers_per_channel": str(users)}


def _baseline(users: int) -> dict[str, str]:
    return {}


CLIENTS: Final[dict[str, tuple[str, Callable[[int], dict[str, str]]]]] = {
    "ours": ("publish", _ours),  # the receiving locustfile of each client, and its parameters for N receivers
    "websocket-client": (str(SCENARIOS_DIR / "baseline_websocket_client.py"), _baseline),
}
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


def _payload(n: int, now_us: int) -> bytes:
    """The published payload of the foreign wires (bench.loadgen.adapters): text, tag and type."""
    return orjson.dumps({"text": CONTENT, "tag": f"fire:{n}:{now_us}:{now_us}", "type": "TEXT"})


async def _bytes(ws: ServerConnection) -> bytes:
    data = await ws.recv()
    return data.encode() if isinstance(data, str) else data


async def _stomp_greet(ws: ServerConnection) -> str:
    await ws.recv()  # CONNECT
    await ws.send(stomp.frame("CONNECTED", {"version": "1.2", "heart-beat": "0,0"}).decode())
    [subscribe] = stomp.frames(await _bytes(ws))
    await ws.send(stomp.frame("RECEIPT", {"receipt-id": subscribe.headers["receipt"]}).decode())
    return subscribe.headers["id"]


def _stomp_message(channel: str, n: int, now_us: int) -> str | bytes:
    headers = {"subscription": channel, "destination": f"/topic/{channel}", "message-id": f"T_{channel}@@{n}",
               "redelivered": "false", "content-type": "application/json"}  # fmt: skip
    return stomp.frame("MESSAGE", headers, _payload(n, now_us)).decode()


async def _mqtt_greet(ws: ServerConnection) -> str:
    await ws.recv()  # CONNECT
    await ws.send(b"\x20\x02\x00\x00")  # CONNACK, accepted
    [subscribe] = mqtt.packets(await _bytes(ws))
    packet_id = subscribe.payload[:2]
    await ws.send(b"\x90\x03" + packet_id + b"\x00")  # SUBACK, QoS 0
    return subscribe.payload[4 : 4 + int.from_bytes(subscribe.payload[2:4])].decode()


def _mqtt_message(channel: str, n: int, now_us: int) -> str | bytes:
    return mqtt.publish(channel, _payload(n, now_us))


async def _socketio_greet(ws: ServerConnection) -> str:
    await ws.send('0{"sid":"fire","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}')
    await ws.recv()  # 40: the namespace
    await ws.send('40{"sid":"fire-ns"}')
    join = socketio.decode(await _bytes(ws), orjson.loads)
    room = join.data[1]["room"]
    await ws.send(f"43{join.ack_id}" + orjson.dumps([{"room": room}]).decode())
    return str(room)


def _socketio_message(channel: str, n: int, now_us: int) -> str | bytes:
    data = orjson.loads(_payload(n, now_us)) | {"room": channel, "from": "fire"}
    return "42" + orjson.dumps(["message", data]).decode()


Greet = Callable[[ServerConnection], Any]
Message = Callable[[str, int, int], str | bytes]
DIALECTS: Final[dict[str, tuple[Greet, Message]]] = {
    "stomp": (_stomp_greet, _stomp_message),
    "mqtt": (_mqtt_greet, _mqtt_message),
    "socketio": (_socketio_greet, _socketio_message),
}


class Firehose:
    """Streams numbered CHAT_MESSAGEs to every subscribed connection at ``rate`` messages/s in total
    (or, for another ``protocol``, the same tagged payloads in its frames)."""

    def __init__(self, batch: int, protocol: str = "chat") -> None:
        self.batch = batch
        self.protocol = protocol
        self.rate = 0
        self.sent = 0
        self.connections: dict[ServerConnection, int] = {}
        self.channels: dict[ServerConnection, str] = {}

    async def handler(self, ws: ServerConnection) -> None:
        if self.protocol != "chat":
            self.channels[ws] = await DIALECTS[self.protocol][0](ws)
            await self.hold(ws)
            return
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
        await self.hold(ws)

    async def hold(self, ws: ServerConnection) -> None:
        self.connections[ws] = 0
        with contextlib.suppress(Exception):
            await ws.wait_closed()
        self.connections.pop(ws, None)
        self.channels.pop(ws, None)

    def frames(self, ws: ServerConnection, count: int) -> list[str] | list[str | bytes]:
        now_us = time.time_ns() // 1000
        first = self.connections[ws]
        self.connections[ws] = first + count
        if self.protocol != "chat":
            message, channel = DIALECTS[self.protocol][1], self.channels[ws]
            return [message(channel, n, now_us) for n in range(first + 1, first + count + 1)]
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


async def measure(
    client: str, users: int, batch: int, rates: list[int], step_s: float, protocol: str = "chat"
) -> list[Step]:
    firehose = Firehose(batch, protocol)
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)  # peers vanish at the end
    async with serve(firehose.handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        run_time = int(len(rates) * step_s + 15)
        scenario, params = CLIENTS[client]
        extra = {} if protocol == "chat" else {"protocol": protocol}
        load = LoadSpec(scenario, users, users, run_time, 1, params(users) | extra)
        work_dir = Path(tempfile.mkdtemp(prefix="clientbench-"))
        process = LocustProcess(load, AuthSpec(auth="none"), f"http://127.0.0.1:{port}", work_dir)
        process.start()
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
                print(f"  {client:17} {protocol:8} batch {batch:3}  {steps[-1].describe()}", flush=True)
        finally:
            pump.cancel()
            process.stop(grace_s=10)
            shutil.rmtree(work_dir, ignore_errors=True)
    return steps


KEPT_UP = 0.95  # a step counts when the client received at least this share of the offered rate


def valid_steps(steps: list[Step], cpu_limit: float) -> list[Step]:
    """Steps where the client kept up with the offered rate and stayed below the CPU limit.

    A step the client fell behind on says little: its CPU figure mixes catching up, backpressure
    and the firehose competing for the same cores."""
    return [s for s in steps if s.cpu_percent < cpu_limit and s.received_per_s >= KEPT_UP * s.rate]


def best_below(steps: list[Step], cpu_limit: float) -> Step | None:
    return max(valid_steps(steps, cpu_limit), key=lambda step: step.received_per_s, default=None)

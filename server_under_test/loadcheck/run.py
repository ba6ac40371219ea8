"""One measured run: N channels, S subscribers each, one publisher per channel at a fixed schedule.

Latency is fan-out latency measured at every receiver from the message's *intended* send time (the
schedule, so a stalled publisher does not hide the delay: no coordinated omission) to its receipt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.core import protocol
from bench.core.histogram import Histogram
from server_under_test.auth import Authenticator
from server_under_test.config import ServerConfig
from server_under_test.loadcheck.leanws import LeanWebSocket, connect


@dataclass(frozen=True, kw_only=True)
class Load:
    """The offered load, the same for every preset compared."""

    channels: int = 4
    subscribers: int = 50  # per channel, the publisher included
    rate: float = 3000.0  # messages per second over all channels
    duration_s: float = 4.0
    warmup_s: float = 1.0
    drain_s: float = 2.0
    content_bytes: int = 64

    @property
    def offered_deliveries_per_s(self) -> float:
        return self.rate * self.subscribers


@dataclass
class Figures:
    """What one run measured."""

    preset: str
    sent: int = 0
    expected: int = 0
    delivered: int = 0
    frames: int = 0
    elapsed_s: float = 0.0
    closed: int = 0
    last_receipt_us: int = 0
    client_cpu: float = 0.0
    server_cpu: float | None = None
    latency: Histogram = field(default_factory=Histogram)

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict[str, Any]:
        lat = self.latency.summary_ms() if self.latency.count else {}
        return {
            "preset": self.preset,
            "sent": self.sent,
            "expected": self.expected,
            "delivered": self.delivered,
            "missing": self.expected - self.delivered,
            "frames": self.frames,
            "delivered_per_s": round(self.delivered_per_s, 1),
            "p50_ms": lat.get("p50"),
            "p99_ms": lat.get("p99"),
            "max_ms": lat.get("max"),
            "closed_connections": self.closed,
            "client_cpu": round(self.client_cpu, 2),
            "server_cpu": None if self.server_cpu is None else round(self.server_cpu, 2),
            "server_us_per_delivery": (
                round(self.server_cpu / self.delivered_per_s * 1e6, 2)
                if self.server_cpu and self.delivered_per_s
                else None
            ),
        }


class Receiver:
    """Counts and times the benchmark messages of one connection."""

    __slots__ = ("figures", "measure_from_us", "ws")

    def __init__(self, figures: Figures, measure_from_us: list[int]) -> None:
        self.figures = figures
        self.measure_from_us = measure_from_us  # shared, set when the measured window opens
        self.ws: LeanWebSocket | None = None

    def on_text(self, payload: bytes) -> None:
        figures = self.figures
        figures.frames += 1
        obj = orjson.loads(payload)
        messages = obj if isinstance(obj, list) else (obj,)
        now_us = time.time_ns() // 1000
        start = self.measure_from_us[0]
        for message in messages:
            if message.get("type") != protocol.CHAT_MESSAGE:
                continue
            tag = protocol.parse_tag(message["message"].get("clientMsgId"))
            if tag is None or tag.intended_us < start or start == 0:
                continue
            figures.delivered += 1
            figures.last_receipt_us = now_us
            figures.latency.record(max(now_us - tag.intended_us, 0))


async def _open(
    url: str, config: ServerConfig, load: Load, figures: Figures, window: list[int]
) -> list[list[Receiver]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    auth = Authenticator(secret=config.jwt_secret, password=config.password, ttl_s=600)
    channels: list[list[Receiver]] = []
    for c in range(load.channels):
        receivers = [Receiver(figures, window) for _ in range(load.subscribers)]
        sockets = await asyncio.gather(
            *(connect(host, port, f"/ws?token={auth.mint(f'load{c}-{i}')}", r.on_text) for i, r in enumerate(receivers))
        )
        for receiver, ws in zip(receivers, sockets, strict=True):
            receiver.ws = ws
            ws.send_text(orjson.dumps(protocol.subscribe(f"load-{c}", 0)))
        channels.append(receivers)
    await asyncio.sleep(0.5)  # let the subscriptions and their presence events settle
    return channels


async def _publish(
    ws: LeanWebSocket, channel: str, name: str, rate: float, until: float, content: str, figures: Figures | None
) -> None:
    """Publish on a fixed schedule; messages that fall behind go at once with their intended time."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    wall_offset_us = time.time_ns() // 1000 - int(start * 1e6)
    seq = 0
    while True:
        now = loop.time()
        due = int((now - start) * rate) + 1
        while seq < due:
            intended = start + seq / rate
            if intended >= until:
                return
            sent_us = time.time_ns() // 1000
            tag = protocol.format_tag(name, seq, int(intended * 1e6) + wall_offset_us, sent_us)
            ws.send_text(orjson.dumps(protocol.publish(channel, content, sent_us // 1000, tag)))
            seq += 1
            if figures is not None:
                figures.sent += 1
        await asyncio.sleep(max(start + seq / rate - loop.time(), 0))


async def measure(
    url: str, config: ServerConfig, load: Load, preset: str, server_cpu: Callable[[], float] | None = None
) -> Figures:
    """Run the load against a server that is already listening at ``url``; ``server_cpu`` reads the
    server's CPU seconds so far, for its share of a core during the measured window."""
    figures = Figures(preset)
    window = [0]
    channels = await _open(url, config, load, figures, window)
    loop = asyncio.get_running_loop()
    content = "x" * load.content_bytes
    per_channel = load.rate / load.channels
    try:
        warm_until = loop.time() + load.warmup_s
        await asyncio.gather(
            *(
                _publish(r[0].ws, f"load-{c}", f"w{c}", per_channel, warm_until, content, None)
                for c, r in enumerate(channels)
                if r[0].ws
            )
        )
        await asyncio.sleep(0.5)
        figures.frames = 0
        window[0] = time.time_ns() // 1000
        cpu0, t0 = time.process_time(), loop.time()
        server0 = server_cpu() if server_cpu else 0.0
        until = t0 + load.duration_s
        await asyncio.gather(
            *(
                _publish(r[0].ws, f"load-{c}", f"p{c}", per_channel, until, content, figures)
                for c, r in enumerate(channels)
                if r[0].ws
            )
        )
        figures.expected = figures.sent * load.subscribers
        drain_until = loop.time() + load.drain_s
        while figures.delivered < figures.expected and loop.time() < drain_until:
            await asyncio.sleep(0.01)
        figures.elapsed_s = max(load.duration_s, (figures.last_receipt_us - window[0]) / 1e6)
        wall = loop.time() - t0
        figures.client_cpu = (time.process_time() - cpu0) / wall
        if server_cpu is not None:
            figures.server_cpu = (server_cpu() - server0) / wall
    finally:
        for receivers in channels:
            for receiver in receivers:
                if receiver.ws is not None:
                    figures.closed += receiver.ws.closed.done()
                    receiver.ws.close()
        await asyncio.sleep(0.2)
    return figures

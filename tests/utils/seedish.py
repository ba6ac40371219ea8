"""An independent chat server for integrity tests: the seed's protocol, minimally, and none of our habits.

SUBSCRIBED carries ``lastMessageId: null``; message ids are global (one counter for every channel) and
strings; ``clientMsgId`` is never echoed; every delivery to every subscriber (the sender included) is
delayed uniformly by 20-60 ms, so that messages arrive reordered. No HTTP API and no auth: any
``?token=`` is ignored. ``Faults`` drops or duplicates the deliveries of chosen message numbers to one
victim (the first subscriber of the channel that is not the sender).

    with seedish_server(Faults(drop={40, 50})) as url:   # ws://127.0.0.1:PORT/ws
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from tests.utils import TIMEOUT

DELAY_S = (0.020, 0.060)


@dataclass
class Faults:
    drop: set[int] = field(default_factory=set)  # message numbers (1, 2, ... over the whole server)
    duplicate: set[int] = field(default_factory=set)
    hit: int = 0  # deliveries dropped or duplicated


class SeedishServer:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.channels: dict[str, list[ServerConnection]] = {}
        self.next_id = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.ready = threading.Event()
        self.stop: asyncio.Future[None] | None = None
        self.sending: set[asyncio.Future[None]] = set()

    async def handler(self, ws: ServerConnection) -> None:
        try:
            async for text in ws:
                message = json.loads(text)
                kind, channel = message.get("type"), str(message.get("channelId"))
                if kind == "SUBSCRIBE":
                    members = self.channels.setdefault(channel, [])
                    if ws not in members:
                        members.append(ws)
                    await ws.send(json.dumps({"type": "SUBSCRIBED", "channelId": channel, "lastMessageId": None}))
                elif kind == "PUBLISH":
                    self.publish(ws, channel, message)
        finally:
            for members in self.channels.values():
                if ws in members:
                    members.remove(ws)

    def publish(self, sender: ServerConnection, channel: str, message: dict[str, Any]) -> None:
        self.next_id += 1
        number = self.next_id
        frame = json.dumps({
            "type": "CHAT_MESSAGE",
            "channelId": channel,
            "message": {"id": f"m-{number}", "senderId": "someone", "messageType": message.get("messageType", "TEXT"),
                        "content": message.get("content"), "timestamp": int(time.time() * 1000)},
        })  # fmt: skip
        members = list(self.channels.get(channel, []))
        victim = next((ws for ws in members if ws is not sender), None)
        for ws in members:
            copies = 1
            if ws is victim and number in self.faults.drop:
                copies, self.faults.hit = 0, self.faults.hit + 1
            elif ws is victim and number in self.faults.duplicate:
                copies, self.faults.hit = 2, self.faults.hit + 1
            for _ in range(copies):
                self.loop.call_later(random.uniform(*DELAY_S), self._send, ws, frame)

    def _send(self, ws: ServerConnection, frame: str) -> None:
        async def send() -> None:
            with contextlib.suppress(Exception):
                await ws.send(frame)

        task = asyncio.ensure_future(send())
        self.sending.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self.sending.discard)

    async def main(self) -> None:
        self.stop = self.loop.create_future()
        async with serve(self.handler, "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.ready.set()
            await self.stop

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.main())


@contextlib.contextmanager
def seedish_server(faults: Faults | None = None) -> Iterator[str]:
    """The server in a thread for the ``with`` block; yields its ``ws://127.0.0.1:PORT/ws``."""
    server = SeedishServer(faults or Faults())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.ready.wait(2 * TIMEOUT)
    try:
        yield f"ws://127.0.0.1:{server.port}/ws"
    finally:
        server.loop.call_soon_threadsafe(lambda: server.stop.set_result(None) if server.stop else None)
        thread.join(2 * TIMEOUT)

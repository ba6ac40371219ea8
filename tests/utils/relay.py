"""A WebSocket + HTTP relay in front of the real server that damages one user's stream on purpose.

It forwards HTTP (token, history) and WebSocket traffic unchanged, except that the CHAT_MESSAGEs sent
to ``victim`` pass through ``Faults``: the n-th message can be dropped, duplicated, or held back
until the next one has gone (reordered). Batched frames are split so single messages can be hit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.utils import TIMEOUT


@dataclass
class Faults:
    drop: set[int] = field(default_factory=set)
    duplicate: set[int] = field(default_factory=set)
    hold: set[int] = field(default_factory=set)  # sent after the message that follows it
    seen: int = 0
    held: list[str] = field(default_factory=list)

    def apply(self, message: dict[str, Any]) -> list[str]:
        """The frames to send for one message, in order."""
        self.seen += 1
        text = json.dumps(message)
        if self.seen in self.drop:
            return []
        if self.seen in self.hold:
            self.held.append(text)
            return []
        out = [text, text] if self.seen in self.duplicate else [text]
        out += self.held
        self.held = []
        return out


def _user_of(path: str) -> str:
    token = path.partition("token=")[2].split("&")[0]
    payload = token.split(".")[1] if token.count(".") == 2 else ""
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)) or b"{}")
    return str(claims.get("sub", ""))


class Relay:
    def __init__(self, upstream: str, victim: str, faults: Faults) -> None:
        self.upstream = upstream.rstrip("/")
        self.victim = victim
        self.faults = faults

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/ws"):
            return None
        forwarded = urllib.request.Request(
            self.upstream + request.path,
            headers={k: v for k, v in request.headers.raw_items() if k.lower() == "authorization"},
        )
        try:
            with urllib.request.urlopen(forwarded, timeout=TIMEOUT) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return Response(status, "relayed", headers, body)

    async def handler(self, client: ServerConnection) -> None:
        assert client.request is not None
        path = client.request.path
        target = self.upstream.replace("http", "ws", 1) + path
        faults = self.faults if _user_of(path) == self.victim else None
        async with connect(target, max_size=None) as server:

            async def upward() -> None:
                async for message in client:
                    await server.send(message)

            async def downward() -> None:
                async for frame in server:
                    data = json.loads(frame)
                    if faults is None:
                        await client.send(frame)
                        continue
                    for message in data if isinstance(data, list) else [data]:
                        if message.get("type") == "CHAT_MESSAGE":
                            for text in faults.apply(message):
                                await client.send(text)
                        else:
                            await client.send(json.dumps(message))

            tasks = [asyncio.create_task(upward()), asyncio.create_task(downward())]
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()


@contextlib.contextmanager
def relay(upstream: str, victim: str, faults: Faults) -> Iterator[str]:
    """Run the relay in a thread; yields its http:// URL."""
    ready = threading.Event()
    state: dict[str, Any] = {}
    proxy = Relay(upstream, victim, faults)

    async def main() -> None:
        state["stop"], state["loop"] = asyncio.Event(), asyncio.get_running_loop()
        async with serve(proxy.handler, "127.0.0.1", 0, process_request=proxy.http, max_size=None) as server:
            state["port"] = server.sockets[0].getsockname()[1]
            ready.set()
            await state["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(TIMEOUT)

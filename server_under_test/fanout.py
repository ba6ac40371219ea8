"""The three fan-out designs (naive, broadcast, batched) and the bounded writer they share.

``Outbox`` is the only place that writes to a connection without awaiting: it applies the slow-consumer
policy (a receiver whose transport write buffer is over ``write_buffer_bytes`` gets nothing more, or is
disconnected) and counts frames. Naive fan-out awaits ``send`` per subscriber, on purpose: it is the
common pattern, kept as the baseline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, Final

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from server_under_test.backends import JsonBackend
from server_under_test.hub import Channel, Client
from server_under_test.metrics import Metrics
from server_under_test.pacing import Pacing

logger = logging.getLogger("server_under_test")

CLOSE_SLOW_CONSUMER: Final = 1008


class Outbox:
    """Writes encoded frames to connections, bounded by the slow-consumer policy."""

    def __init__(self, metrics: Metrics, *, limit: int, policy: str) -> None:
        self.metrics = metrics
        self.limit = limit
        self.disconnect = policy == "disconnect"
        self._closing: set[asyncio.Task[None]] = set()  # strong references until the closes finish

    def writable(self, client: Client) -> bool:
        """Whether a frame may go to the client now; a client over its bound is dropped or evicted."""
        if client.evicted or client.conn.protocol.state is not State.OPEN:
            return False
        transport = client.conn.transport
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() <= self.limit:
            return True
        self.overflow(client)
        return False

    def overflow(self, client: Client) -> None:
        """Apply the slow-consumer policy to a client whose write buffer is over its bound."""
        if self.disconnect:
            self.evict(client)
        else:
            self.metrics.chat_dropped += 1

    def evict(self, client: Client) -> None:
        client.evicted = True
        self.metrics.chat_slow_consumer_disconnects += 1
        self.metrics.chat_dropped += 1
        logger.info("disconnecting slow consumer %s", client.user_id)
        task = asyncio.get_running_loop().create_task(client.conn.close(CLOSE_SLOW_CONSUMER, "slow consumer"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def write(self, clients: Iterable[Client], data: bytes, chat_messages: int) -> None:
        """One text frame (payload already encoded) to every writable client, without awaiting.

        Server frames are unmasked, so without a compression extension the frame's bytes are the same
        for every receiver: they are built once and written straight to each transport. Connections that
        negotiated permessage-deflate compress per connection, through ``websockets.broadcast``."""
        framed: bytes | None = None
        compressing: list[ServerConnection] = []
        sent, limit, is_open = 0, self.limit, State.OPEN
        for client in clients:  # the hot loop: writable() inlined
            conn = client.conn
            if client.evicted or conn.protocol.state is not is_open:
                continue
            transport = conn.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > limit:
                self.overflow(client)
                continue
            sent += 1
            if conn.protocol.extensions:
                compressing.append(conn)
                continue
            if framed is None:
                framed = Frame(Opcode.TEXT, data).serialize(mask=False)
            transport.write(framed)
        if compressing:
            broadcast(compressing, data, text=True)
        self.metrics.chat_frames_out += sent
        self.metrics.chat_messages_out += chat_messages * sent

    def write_one(self, client: Client, data: bytes) -> None:
        self.write((client,), data, 0)


class Fanout:
    """Delivers channel events to a channel's subscribers; subclasses are the designs."""

    name = "broadcast"

    def __init__(self, outbox: Outbox, codec: JsonBackend) -> None:
        self.outbox = outbox
        self.codec = codec

    async def deliver(self, channel: Channel, event: dict[str, Any], chat: bool) -> None:
        self.outbox.write(tuple(channel.members), self.codec.dumps(event), int(chat))

    def flush(self, channel: Channel) -> None:
        """Send whatever is waiting for ``channel`` now (batched mode only)."""

    def flush_all(self, channels: Iterable[Channel]) -> None:
        for channel in channels:
            self.flush(channel)


class NaiveFanout(Fanout):
    """Per subscriber: encode the event again and ``await send`` it."""

    name = "naive"

    async def deliver(self, channel: Channel, event: dict[str, Any], chat: bool) -> None:
        metrics = self.outbox.metrics
        for client in tuple(channel.members):
            if not self.outbox.writable(client):
                continue
            try:
                await client.conn.send(self.codec.dumps_text(event))
            except ConnectionClosed:
                continue
            metrics.chat_frames_out += 1
            metrics.chat_messages_out += chat


class BatchedFanout(Fanout):
    """Per channel: at most one frame per subscriber every window, carrying every event that
    waited (up to ``max_batch``, which flushes at once).

    The flush is paced, not delayed: a channel that has not flushed for a window sends at the end
    of the current event-loop iteration (a quiet channel adds no timer delay), a busy one a window
    after its previous flush. The window is ``pacing.window_s``, which lengthens under load
    (``server_under_test.pacing``). The cost of fan-out is one ``write`` per subscriber per
    frame, on the server and in every client, so capping frames per channel makes that cost stop
    growing with the message rate: batches grow with load instead, and latency grows by at most the
    window. A window of 0 flushes at the end of every iteration."""

    name = "batched"

    def __init__(self, outbox: Outbox, codec: JsonBackend, pacing: Pacing, *, max_batch: int) -> None:
        super().__init__(outbox, codec)
        self.pacing = pacing
        self.max_batch = max_batch

    async def deliver(self, channel: Channel, event: dict[str, Any], chat: bool) -> None:
        channel.pending.append(event)
        channel.chat_pending += chat
        if len(channel.pending) >= self.max_batch:
            self.flush(channel)
        elif channel.timer is None:
            loop = asyncio.get_running_loop()
            due = channel.last_flush + self.pacing.window_s
            if due <= loop.time():
                channel.timer = loop.call_soon(self.flush, channel)
            else:
                channel.timer = loop.call_at(due, self.flush, channel)

    def flush(self, channel: Channel) -> None:
        if channel.timer is not None:
            channel.timer.cancel()
            channel.timer = None
        events, chat = channel.pending, channel.chat_pending
        if not events:
            return
        channel.pending = []
        channel.chat_pending = 0
        channel.last_flush = asyncio.get_running_loop().time()
        try:
            data = self.codec.dumps(events[0] if len(events) == 1 else events)
        except (TypeError, ValueError):  # one event that cannot be encoded must not sink the others
            events, chat = self._encodable(events)
            if not events:
                return
            data = self.codec.dumps(events)
        started = time.perf_counter()
        self.outbox.write(tuple(channel.members), data, chat)
        finished = time.perf_counter()
        self.pacing.spent(finished - started, finished)
        self.outbox.metrics.chat_batches += 1

    def _encodable(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        kept: list[dict[str, Any]] = []
        for event in events:
            try:
                self.codec.dumps(event)
            except (TypeError, ValueError):
                logger.error("dropped an event that cannot be encoded: %.200r", event)
                continue
            kept.append(event)
        return kept, sum(1 for event in kept if event.get("type") == "CHAT_MESSAGE")


def make_fanout(name: str, outbox: Outbox, codec: JsonBackend, pacing: Pacing, *, max_batch: int) -> Fanout:
    """The fan-out design called ``name`` (naive, broadcast, batched)."""
    if name == "naive":
        return NaiveFanout(outbox, codec)
    if name == "batched":
        return BatchedFanout(outbox, codec, pacing, max_batch=max_batch)
    return Fanout(outbox, codec)

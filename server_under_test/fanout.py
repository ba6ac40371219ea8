"""The three fan-out designs (naive, broadcast, batched), the bounded writer they share, and batch negotiation.

``Outbox`` is the only place that writes to a connection without awaiting: it applies the slow-consumer
policy (a receiver whose transport write buffer is over ``write_buffer_bytes`` gets nothing more, or is
disconnected) and counts frames and writes. Naive fan-out awaits ``send`` per subscriber, on purpose: it
is the common pattern, kept as the baseline.

A batched flush encodes each event once and makes one ``transport.write`` per connection carrying all
the channel's frames: one JSON object per frame, or one JSON array for a client that negotiated batching
(``wants_batches``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol

from bench.core import protocol
from server_under_test.backends import JsonBackend
from server_under_test.hub import Channel, Client
from server_under_test.metrics import Metrics
from server_under_test.pacing import Pacing

logger = logging.getLogger("server_under_test")

CLOSE_SLOW_CONSUMER: Final = 1008
BATCH_SUBPROTOCOL: Final = Subprotocol("chatbench.batch")
"""The WebSocket subprotocol with which a client asks for JSON-array frames (docs/PROTOCOL.md §3)."""
_BATCH_QUERY_VALUES: Final = frozenset({"1", "true"})


def select_subprotocol(conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """``chatbench.batch`` when the client offers it; otherwise no subprotocol (never a refusal)."""
    return BATCH_SUBPROTOCOL if BATCH_SUBPROTOCOL in offered else None


def wants_batches(conn: ServerConnection) -> bool:
    """Whether the client negotiated array frames: the subprotocol, or ``batch=1`` in the query."""
    if conn.subprotocol == BATCH_SUBPROTOCOL:
        return True
    if conn.request is None:
        return False
    values = parse_qs(urlsplit(conn.request.path).query).get("batch", [])
    return bool(values) and values[-1].lower() in _BATCH_QUERY_VALUES


def text_frame(payload: bytes) -> bytes:
    """An unmasked (server) text frame: the same bytes for every receiver without compression."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


class Batch:
    """The events one channel flushes, encoded once for all its receivers.

    ``objects`` is every event in its own frame, concatenated (for a plain client); ``array`` is one
    frame of all of them as a JSON array (for a client that negotiated batching); a batch of one is the
    plain object either way."""

    __slots__ = ("array", "array_payload", "chat", "frames", "objects", "payloads")

    def __init__(self, payloads: list[bytes], chat: int) -> None:
        self.payloads = payloads
        self.chat = chat
        self.frames = [text_frame(payload) for payload in payloads]
        if len(payloads) == 1:
            self.array_payload, self.array = payloads[0], self.frames[0]
            self.objects = self.frames[0]
        else:
            self.array_payload = b"[" + b",".join(payloads) + b"]"
            self.array = text_frame(self.array_payload)
            self.objects = b"".join(self.frames)


class Outbox:
    """Writes encoded frames to connections, bounded by the slow-consumer policy."""

    def __init__(self, metrics: Metrics, *, limit: int, policy: str) -> None:
        self.metrics = metrics
        self.limit = limit
        self.disconnect = policy == "disconnect"
        self._closing: set[asyncio.Task[None]] = set()  # strong references until the closes finish

    def writable(self, client: Client, frames: int = 1) -> bool:
        """Whether ``frames`` may go to the client now; a client over its bound is dropped or evicted."""
        if client.evicted or client.conn.protocol.state is not State.OPEN:
            return False
        transport = client.conn.transport
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() <= self.limit:
            return True
        self.overflow(client, frames)
        return False

    def overflow(self, client: Client, frames: int = 1) -> None:
        """Apply the slow-consumer policy to a client whose write buffer is over its bound."""
        self.metrics.chat_dropped += frames
        if self.disconnect:
            self.evict(client)

    def evict(self, client: Client) -> None:
        client.evicted = True
        self.metrics.chat_slow_consumer_disconnects += 1
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
                framed = text_frame(data)
            transport.write(framed)
        if compressing:
            broadcast(compressing, data, text=True)
        metrics = self.metrics
        metrics.chat_frames_out += sent
        metrics.chat_writes += sent
        metrics.chat_messages_out += chat_messages * sent

    def write_one(self, client: Client, data: bytes) -> None:
        self.write((client,), data, 0)

    def write_batches(self, client: Client, batches: Sequence[Batch]) -> None:
        """One flush's batches to one client, in one write (one system call)."""
        arrays = client.batch
        frames = len(batches) if arrays else sum(len(batch.frames) for batch in batches)
        if not self.writable(client, frames):
            return
        conn = client.conn
        chunks: list[bytes]
        if conn.protocol.extensions:
            chunks = self._compressed(conn, batches, arrays)
        elif arrays:
            chunks = [batch.array for batch in batches]
        else:
            chunks = [batch.objects for batch in batches]
        conn.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        metrics = self.metrics
        metrics.chat_frames_out += frames
        metrics.chat_writes += 1
        metrics.chat_messages_out += sum(batch.chat for batch in batches)

    @staticmethod
    def _compressed(conn: ServerConnection, batches: Sequence[Batch], arrays: bool) -> list[bytes]:
        """The frames compressed by the connection's own (stateful) permessage-deflate, in order."""
        sans_io = conn.protocol
        for batch in batches:
            for payload in (batch.array_payload,) if arrays else batch.payloads:
                sans_io.send_text(payload)
        return [chunk for chunk in sans_io.data_to_send() if chunk]


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
            metrics.chat_writes += 1
            metrics.chat_messages_out += chat


class BatchedFanout(Fanout):
    """Per channel: at most one frame per subscriber every window, carrying every event that
    waited (up to ``max_batch``, which flushes at once).

    The flush is paced, not delayed: a channel that has not flushed for a window sends at the end
    of the current event-loop iteration (a quiet channel adds no timer delay), a busy one a window
    after its previous flush. The window is ``pacing.window_s``, which lengthens under load
    (``server_under_test.pacing``). The cost of fan-out is one ``write`` per subscriber per
    flush, on the server and in every client, so capping flushes per channel makes that cost stop
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
        batch = self._take(channel, asyncio.get_running_loop().time())
        if batch is None:
            return
        started = time.perf_counter()
        outbox = self.outbox
        single = (batch,)
        for client in tuple(channel.members):
            outbox.write_batches(client, single)
        finished = time.perf_counter()
        self.pacing.spent(finished - started, finished)
        outbox.metrics.chat_batches += 1

    def _take(self, channel: Channel, now: float) -> Batch | None:
        """The channel's waiting events as a Batch (None when there are none); the channel starts afresh."""
        events, chat = channel.pending, channel.chat_pending
        channel.pending, channel.chat_pending, channel.last_flush = [], 0, now
        dumps = self.codec.dumps
        payloads: list[bytes] = []
        for event in events:
            try:
                payloads.append(dumps(event))
            except (TypeError, ValueError):  # one event that cannot be encoded must not sink the others
                logger.error("dropped an event that cannot be encoded: %.200r", event)
                chat -= event.get("type") == protocol.CHAT_MESSAGE
        return Batch(payloads, chat) if payloads else None


def make_fanout(name: str, outbox: Outbox, codec: JsonBackend, pacing: Pacing, *, max_batch: int) -> Fanout:
    """The fan-out design called ``name`` (naive, broadcast, batched)."""
    if name == "naive":
        return NaiveFanout(outbox, codec)
    if name == "batched":
        return BatchedFanout(outbox, codec, pacing, max_batch=max_batch)
    return Fanout(outbox, codec)

"""The three fan-out designs (naive, broadcast, batched), the bounded writer they share, and batch negotiation.

``Outbox`` is the only place that writes to a connection without awaiting: it applies the slow-consumer
policy (a receiver whose transport write buffer is over ``write_buffer_bytes`` gets nothing more, or is
disconnected) and counts frames and writes. Naive fan-out awaits ``send`` per subscriber, on purpose: it
is the common pattern, kept as the baseline.

Batched fan-out is smart batching: an event waits only until the end of the event-loop pass it arrived
in. The first event of a pass schedules one flush with ``loop.call_soon``, which runs after every callback
that was already ready, so an idle server sends at once and a busy one sends together everything the pass
collected: batches grow only while the loop is busy. A flush encodes each event once and makes one
``transport.write`` per connection, carrying all its frames from all its channels: one JSON object per
frame, or one JSON array per channel for a client that negotiated batching (``wants_batches``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol

from bench.core import protocol
from server_under_test.backends import JsonBackend
from server_under_test.hub import Channel, Client
from server_under_test.metrics import Metrics

logger = logging.getLogger("server_under_test")

CLOSE_SLOW_CONSUMER: Final = 1008
BATCH_SUBPROTOCOL: Final = Subprotocol(protocol.BATCH_SUBPROTOCOL)
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
    plain object either way. Each is built on first use, once: a flush whose receivers all want one
    form never builds the other."""

    __slots__ = ("_array", "_frames", "_objects", "chat", "payloads")

    def __init__(self, payloads: list[bytes], chat: int) -> None:
        self.payloads = payloads
        self.chat = chat
        self._frames: list[bytes] | None = None
        self._array: bytes | None = None
        self._objects: bytes | None = None

    @property
    def frames(self) -> list[bytes]:
        if self._frames is None:
            self._frames = [text_frame(payload) for payload in self.payloads]
        return self._frames

    @property
    def array_payload(self) -> bytes:
        payloads = self.payloads
        return payloads[0] if len(payloads) == 1 else b"[" + b",".join(payloads) + b"]"

    @property
    def array(self) -> bytes:
        if self._array is None:
            self._array = self.objects if len(self.payloads) == 1 else text_frame(self.array_payload)
        return self._array

    @property
    def objects(self) -> bytes:
        if self._objects is None:
            self._objects = b"".join(self.frames)
        return self._objects


class Outbox:
    """Writes encoded frames to connections, bounded by the slow-consumer policy.

    ``coalesce``: a flush's frames for one connection go out in one ``transport.write`` (one system
    call); without it every frame is a write of its own, as ``websockets``' ``send`` does."""

    def __init__(self, metrics: Metrics, *, limit: int, policy: str, coalesce: bool = True) -> None:
        self.metrics = metrics
        self.limit = limit
        self.disconnect = policy == "disconnect"
        self.coalesce = coalesce
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
        """One text frame (payload already encoded) to every writable client, without awaiting."""
        self.send(clients, Batch([data], chat_messages))

    def write_one(self, client: Client, data: bytes) -> None:
        self.write((client,), data, 0)

    def send(self, clients: Iterable[Client], batch: Batch) -> None:
        """One batch to every writable client, each in one write, without awaiting.

        Server frames are unmasked, so without a compression extension a batch's bytes are the same for
        every receiver: built once (``Batch``), written straight to each transport."""
        limit, is_open, coalesce = self.limit, State.OPEN, self.coalesce
        plain_frames = len(batch.payloads)
        array = objects = None  # the batch's two forms, fetched once for the whole loop
        frames = writes = receivers = 0
        for client in clients:  # the hot loop: writable() inlined
            conn = client.conn
            if client.evicted or conn.protocol.state is not is_open:
                continue
            transport = conn.transport
            if transport.is_closing():
                continue
            arrays = client.batch
            count = 1 if arrays else plain_frames
            if transport.get_write_buffer_size() > limit:
                self.overflow(client, count)
                continue
            receivers += 1
            frames += count
            if conn.protocol.extensions or (count > 1 and not coalesce):
                writes += self._write_each(conn, (batch,), arrays)
            else:
                if arrays:
                    array = array or batch.array
                    transport.write(array)
                else:
                    objects = objects or batch.objects
                    transport.write(objects)
                writes += 1
        metrics = self.metrics
        metrics.chat_frames_out += frames
        metrics.chat_writes += writes
        metrics.chat_messages_out += batch.chat * receivers

    def send_batches(self, client: Client, batches: Sequence[Batch]) -> None:
        """Several batches (of different channels) to one client, in one write unless not coalescing."""
        arrays = client.batch
        frames = len(batches) if arrays else sum(len(batch.payloads) for batch in batches)
        if not self.writable(client, frames):
            return
        metrics = self.metrics
        metrics.chat_frames_out += frames
        metrics.chat_writes += self._write_each(client.conn, batches, arrays)
        metrics.chat_messages_out += sum(batch.chat for batch in batches)

    def _write_each(self, conn: ServerConnection, batches: Sequence[Batch], arrays: bool) -> int:
        """Write ``batches`` to ``conn``: one write when coalescing, else one per frame; returns the writes.
        A connection with permessage-deflate compresses every frame itself (stateful), in order."""
        chunks: list[bytes]
        if conn.protocol.extensions:
            sans_io = conn.protocol
            for batch in batches:
                for payload in (batch.array_payload,) if arrays else batch.payloads:
                    sans_io.send_text(payload)
            chunks = [chunk for chunk in sans_io.data_to_send() if chunk]
        elif arrays:
            chunks = [batch.array for batch in batches]
        else:
            chunks = [frame for batch in batches for frame in batch.frames]
        if not self.coalesce:
            for chunk in chunks:
                conn.transport.write(chunk)
            return len(chunks)
        conn.transport.write(b"".join(chunks))
        return 1


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
    """Smart batching: a channel's events wait until the end of the event-loop pass, then one write per
    connection per flush (module docstring). ``max_batch`` waiting events flush the channel at once.

    With a ``window_s`` above 0 a channel also flushes at most once per window (paced: a channel that
    has not flushed for a window still sends at the end of the pass), trading latency for fewer frames."""

    name = "batched"

    def __init__(self, outbox: Outbox, codec: JsonBackend, *, max_batch: int, window_s: float = 0.0) -> None:
        super().__init__(outbox, codec)
        self.max_batch = max_batch
        self.window_s = window_s
        self._dirty: dict[Channel, None] = {}  # channels to flush at the end of this pass, in order
        self._pass: asyncio.Handle | None = None

    async def deliver(self, channel: Channel, event: dict[str, Any], chat: bool) -> None:
        channel.pending.append(event)
        channel.chat_pending += chat
        if len(channel.pending) >= self.max_batch:
            self.flush(channel)
        elif channel not in self._dirty and channel.timer is None:
            if self.window_s:
                loop = asyncio.get_running_loop()
                due = channel.last_flush + self.window_s
                if due > loop.time():
                    channel.timer = loop.call_at(due, self._due, channel)
                    return
            self._due(channel)

    def _due(self, channel: Channel) -> None:
        """Flush ``channel`` with the others at the end of this pass."""
        channel.timer = None
        self._dirty[channel] = None
        if self._pass is None:
            self._pass = asyncio.get_running_loop().call_soon(self._end_of_pass)

    def _end_of_pass(self) -> None:
        self._pass = None
        dirty, self._dirty = self._dirty, {}
        self._write(dirty)

    def flush(self, channel: Channel) -> None:
        if channel.timer is not None:
            channel.timer.cancel()
            channel.timer = None
        self._dirty.pop(channel, None)
        if channel.pending:
            self._write((channel,))

    def _write(self, channels: Iterable[Channel]) -> None:
        """Encode each channel's batch once; one ``write_batches`` per connection over all the channels."""
        now = asyncio.get_running_loop().time()
        outbox = self.outbox
        spread: dict[Client, list[Batch]] = {}  # connections in several channels: written after the loop
        flushed = 0
        for channel in channels:
            batch = self._take(channel, now)
            if batch is None:
                continue
            flushed += 1
            members = tuple(channel.members)
            if any(len(client.channels) > 1 for client in members):
                for client in members:
                    if len(client.channels) > 1:
                        spread.setdefault(client, []).append(batch)
                members = tuple(client for client in members if len(client.channels) == 1)
            outbox.send(members, batch)
        for client, batches in spread.items():
            outbox.send_batches(client, batches)
        outbox.metrics.chat_batches += flushed

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


def make_fanout(name: str, outbox: Outbox, codec: JsonBackend, *, max_batch: int, window_ms: float = 0.0) -> Fanout:
    """The fan-out design called ``name`` (naive, broadcast, batched)."""
    if name == "naive":
        return NaiveFanout(outbox, codec)
    if name == "batched":
        return BatchedFanout(outbox, codec, max_batch=max_batch, window_s=window_ms / 1000)
    return Fanout(outbox, codec)

"""One TCP connection: HTTP/1.1 first (``server_under_test.http11``), then, after an accepted upgrade, one
WebSocket: every frame counted against the rate limit, UTF-8 decoding, dispatch, an ERROR for each refusal.

:class:`ChatConnection` is websockets' ``ServerConnection`` that starts life as an HTTP session: it does
not hand the transport to websockets until ``GET /ws`` passed its checks; then it replays the request head
(and whatever the client sent after it) into websockets, which performs the handshake as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import ClassVar, Final, cast

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import DATA_OPCODES, Frame
from websockets.protocol import Event, State

from bench.core import protocol
from bench.core.exceptions import ProtocolError
from server_under_test.app import ChatApp
from server_under_test.fanout import wants_batches
from server_under_test.http11 import HttpRequest, HttpSession, Upgrade
from server_under_test.http_api import HttpApi
from server_under_test.hub import Client
from server_under_test.ratelimit import FloodDetector, TokenBucket

logger = logging.getLogger("server_under_test")

WS_FEED_BYTES: Final = 16 * 1024  # WebSocket input is parsed a slice per event-loop turn


class ChatConnection(ServerConnection):
    """A connection that speaks HTTP until its upgrade; then a WebSocket whose frames are policed."""

    api: ClassVar[HttpApi]  # set by connection_class()
    client: Client | None = None
    http: HttpSession | None = None
    _refusing = False  # the data message being received has a frame refused by the rate limit
    _backlog = memoryview(b"")  # WebSocket input not parsed yet (reading is paused meanwhile)
    _yielding = False  # reading paused by _feed_websocket
    _cut = False  # closed for abuse: its input is not read any more

    @property
    def app(self) -> ChatApp:
        return self.api.app

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.verdicts: deque[bool] = deque()  # per data message received: refused by the rate limit
        self.http = HttpSession(transport, self.api, self.api.limits, self._upgrade, self.api.sessions)

    def _upgrade(self, upgrade: Upgrade, request: HttpRequest, rest: bytes) -> None:
        """Hand the transport to websockets: the handshake runs on the request's head, replayed."""
        self.http = None
        config = self.app.config
        self.client = Client(
            self,
            upgrade.identity,
            TokenBucket(config.rate_limit_per_s, config.rate_limit_burst),
            FloodDetector(config.rate_limit_close_after, config.rate_limit_window_s),
        )
        super().connection_made(self.transport)
        self.data_received(request.head_bytes() + rest)

    # --- asyncio.Protocol: HTTP until the upgrade -----------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.http is not None:
            self.http.data_received(data)
        elif self._cut:
            return
        elif self._backlog:  # more arrived while we yield (websockets resumed reading): keep the order
            self._backlog = memoryview(bytes(self._backlog) + data)
        else:
            self._backlog = memoryview(data)
            self._feed_websocket()

    def _feed_websocket(self) -> None:
        """Parse one slice of the input, then let the event loop run other connections before the next:
        a peer that floods (pings, tiny fragments) delays the others by one slice, not by its whole read."""
        backlog, transport = self._backlog, self.transport
        if self.protocol.state is State.CLOSED or transport.is_closing():
            self._backlog = memoryview(b"")
            return
        self._backlog = backlog[WS_FEED_BYTES:]
        if self.protocol.state is State.OPEN and self._not_reading():
            self._backlog = memoryview(b"")
        else:
            super().data_received(bytes(backlog[:WS_FEED_BYTES]))
        if self._backlog:
            if not self._yielding:
                transport.pause_reading()
                self._yielding = True
            self.loop.call_soon(self._feed_websocket)
        elif self._yielding:
            self._yielding = False
            if not (self.recv_messages.paused or self._cut):  # websockets' flow control may want it paused
                transport.resume_reading()

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio allows a bool
        if self.http is not None:
            return self.http.eof_received()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.http is not None:
            self.http.connection_lost()
            return
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        if self.http is not None:
            self.http.pause_writing()
        else:
            super().pause_writing()

    def resume_writing(self) -> None:
        if self.http is not None:
            self.http.resume_writing()
        else:
            super().resume_writing()

    # --- the WebSocket: frames against the rate limit and the write-buffer bound ------------------

    def process_event(self, event: Event) -> None:
        client = self.client
        if self.request is None or not isinstance(event, Frame) or client is None or self._admit(client, event):
            super().process_event(event)

    def _admit(self, client: Client, frame: Frame) -> bool:
        """Count one frame (data fragment or control frame) against the token bucket; False drops it.

        A data message with a refused fragment is refused whole (one ``RATE_LIMITED`` ERROR, and the
        receive loop skips it); ``rate_limit_close_after`` refusals within the window close with 1008."""
        if self.protocol.state is not State.OPEN:
            return False
        metrics = self.app.metrics
        data = frame.opcode in DATA_OPCODES
        metrics.chat_frames_in += data
        if not client.bucket.take():
            metrics.chat_rate_limited += 1
            if client.flood.refused():
                metrics.chat_rate_limit_closes += 1
                self._close_abusive("rate limit exceeded")
                return False
            if data and not self._refusing:
                self.app.refuse(client, ProtocolError(protocol.RATE_LIMITED, "too many frames; slow down"))
                self._refusing = True
        if data and frame.fin:
            self.verdicts.append(self._refusing)
            self._refusing = False
        return True

    def _not_reading(self) -> bool:
        """A peer that keeps sending (pings, say) but does not read what we answer is closed with 1008
        once its write buffer passes ``write_buffer_bytes``, whatever the slow-consumer policy."""
        if self.transport.get_write_buffer_size() <= self.app.config.write_buffer_bytes:
            return False
        self.app.metrics.chat_slow_consumer_disconnects += 1
        self._close_abusive("slow consumer")
        return True

    def _close_abusive(self, reason: str) -> None:
        """Fail the connection with 1008 now: send the close frame, stop reading (the peer's sends block
        instead of costing us a read and a discard each), and cut the transport after ``close_timeout``
        if the peer never reads the close frame."""
        if self.client is not None:
            self.client.evicted = True
        self.protocol.fail(protocol.CLOSE_POLICY, reason)
        self.send_data()
        self._cut = True
        self._backlog = memoryview(b"")
        self.transport.pause_reading()
        self.loop.call_later(self.close_timeout or 0, self.transport.abort)


def connection_class(app: ChatApp) -> type[ChatConnection]:
    """The ``create_connection`` class for websockets' ``serve``, bound to this app's HTTP API."""

    class AppConnection(ChatConnection):
        api = HttpApi(app)

    return AppConnection


async def serve_connection(conn: ServerConnection) -> None:
    """The handler websockets runs for each upgraded connection."""
    if not isinstance(conn, ChatConnection) or conn.client is None:  # only after the checks; never reached
        await conn.close(protocol.CLOSE_POLICY, "not authenticated")
        return
    app, client = conn.app, conn.client
    client.batch = wants_batches(conn)  # negotiated in the handshake, which ran after the Client was made
    await app.connected(client)
    try:
        await _receive_loop(app, client, conn.verdicts)
    except ConnectionClosed:
        pass
    finally:
        await app.disconnected(client)


async def _receive_loop(app: ChatApp, client: Client, verdicts: deque[bool]) -> None:
    loads = app.codec.loads
    async for raw in client.conn:
        if verdicts and verdicts.popleft():
            continue  # refused by the rate limit (its ERROR is already sent)
        try:
            text = raw if isinstance(raw, str) else raw.decode("utf-8")  # a binary frame: strict UTF-8 text
        except UnicodeDecodeError:
            app.refuse(client, ProtocolError(protocol.BAD_JSON, "a binary frame must hold UTF-8 JSON text"))
            continue
        try:
            await app.handle(client, protocol.parse_client_message(text, loads))
        except ProtocolError as exc:
            app.refuse(client, exc)
        except RecursionError:
            app.refuse(client, ProtocolError(protocol.BAD_JSON, "frame is nested too deeply"))
        except (OverflowError, ValueError) as exc:  # e.g. a timestamp of 1e400
            app.refuse(client, ProtocolError(protocol.BAD_MESSAGE, f"a value is out of range: {exc}"))
        except ConnectionClosed:
            raise
        except Exception:
            logger.exception("handler failed for %s", client.user_id)
            app.refuse(client, ProtocolError(protocol.INTERNAL, "the server failed on this message"))

"""A WebSocket client for Locust users: websockets' Sans-I/O ``ClientProtocol`` over a gevent socket.

No threads: every blocking call is a gevent socket call, so thousands of connections share one
process. websockets performs the upgrade and frames what the client sends; what the server sends is
read by ``bench.core.frames`` (a header and a slice per frame, several times cheaper).

Two ways to receive: ``recv_messages`` blocks the calling greenlet until messages arrive, and
``start_reading`` hands the socket to the process's reader (``bench.loadgen.reader``: one greenlet reads
every ready socket), calling back with each batch of messages and once when the connection is lost.
Either way ping is answered with pong, fragments are reassembled, and a close frame or a dropped
socket becomes a ``ClientConnectionError`` whose ``reason`` labels it (``closed_1012``, ``reset``).
With ``debug`` set, every frame sent and received is logged, like the seed's ``enableWebSocketDebug``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket as _stdsocket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.lock
import gevent.socket
import gevent.ssl
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from bench.core.exceptions import ClientConnectionError
from bench.core.frames import NO_STATUS as NO_STATUS_CODE
from bench.core.frames import FrameError, ServerFrames
from bench.loadgen.reader import Reader, process_reader

DEBUG_LOGGER = logging.getLogger("chatbench.ws")
RECV_BYTES = 256 * 1024
# The kernel's receive time of what a read returns (SO_TIMESTAMPNS, Linux; also on TCP since 4.13): a
# message is timed when it reached this host, not when a busy reader got to it. A read that returns the
# bytes of several segments is timed at the last one's (errs late). Python has no name for the option.
SO_TIMESTAMPNS = 35 if sys.platform == "linux" else None
TIMESPEC = struct.Struct("qq")  # the stamp: struct timespec (seconds, nanoseconds)
STAMP_SPACE = _stdsocket.CMSG_SPACE(TIMESPEC.size) if SO_TIMESTAMPNS else 0
OnMessages = Callable[[list[bytes], int | None], None]  # (payloads, kernel receive time µs or None: now)
DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class ConnectTiming:
    """How long the TCP (+TLS) connect and the HTTP upgrade took, in microseconds."""

    connect_us: int
    handshake_us: int


def insecure_ssl_context() -> gevent.ssl.SSLContext:
    """TLS without certificate checks (``--tls-insecure on``: self-signed test servers)."""
    context = gevent.ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = gevent.ssl.CERT_NONE
    return context


def _now_us() -> int:
    return time.perf_counter_ns() // 1000


class WebSocketConnection:
    """One client connection. Not shared between users; one reader at a time, any greenlet may send."""

    __slots__ = (
        "_binary",
        "_closed",
        "_debug",
        "_fd",
        "_frames",
        "_on_lost",
        "_on_messages",
        "_pending",
        "_protocol",
        "_raw",
        "_reader",
        "_send_lock",
        "_sock",
        "_spawn",
        "_ssl_context",
        "_timeout",
        "_uri",
        "label",
    )

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        ssl_context: gevent.ssl.SSLContext | None = None,
        max_message: int = DEFAULT_MAX_MESSAGE,
        debug: bool = False,
        label: str = "",
        subprotocols: Sequence[str] = (),
        binary: bool = False,
    ) -> None:
        """``subprotocols`` are offered at the upgrade; with ``binary`` every message sent is binary."""
        self._uri = parse_uri(url)
        offered = [Subprotocol(name) for name in subprotocols] or None
        self._protocol = ClientProtocol(self._uri, max_size=max_message, subprotocols=offered)
        self._binary = binary
        self._frames = ServerFrames(max_message)
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._sock: gevent.socket.socket | None = None
        self._fd = -1  # the socket's file descriptor, for the reader
        self._send_lock = gevent.lock.Semaphore()
        self._pending: list[bytes] = []  # messages that arrived with the upgrade response
        self._closed: ClientConnectionError | None = None  # a close frame behind delivered messages
        self._debug = debug
        self._reader: Reader | None = None
        self._on_messages: OnMessages | None = None
        self._raw: _stdsocket.socket | None = None  # the socket under gevent's, when it stamps receive times
        self._on_lost: Callable[[ClientConnectionError], None] | None = None
        self._spawn: Callable[..., Any] = gevent.spawn
        self.label = label

    # -- opening ---------------------------------------------------------------------------

    def connect(self) -> ConnectTiming:
        """Open TCP (TLS for wss://) and perform the upgrade; raises ClientConnectionError."""
        start = _now_us()
        try:
            sock = gevent.socket.create_connection((self._uri.host, self._uri.port), timeout=self._timeout)
            sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
            if self._uri.secure:
                context = self._ssl_context or gevent.ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self._uri.host)
        except gevent.ssl.SSLError as exc:
            raise ClientConnectionError("tls", str(exc)) from None
        except TimeoutError:
            raise ClientConnectionError("connect_timeout", f"{self._uri.host}:{self._uri.port}") from None
        except ConnectionRefusedError:
            raise ClientConnectionError("refused", f"{self._uri.host}:{self._uri.port}") from None
        except OSError as exc:
            raise ClientConnectionError("connect_error", str(exc)) from None
        self._sock, self._fd = sock, sock.fileno()
        connected = _now_us()
        try:
            self._handshake()
        except BaseException:
            self.abort()
            raise
        sock.settimeout(None)
        if not self._uri.secure:
            self._raw = _stamping(sock)
        return ConnectTiming(connected - start, _now_us() - connected)

    def _handshake(self) -> None:
        """websockets reads the response head; the bytes after it are frames, for ``ServerFrames``."""
        protocol = self._protocol
        protocol.send_request(protocol.connect())
        self._flush()
        received = b""  # until the end of the response head, then only what follows it
        head_done = False
        while protocol.state is State.CONNECTING:
            data = self._read()
            if not data:
                raise ClientConnectionError("handshake_eof", "server closed during the upgrade")
            if head_done:  # a refusal's body, for its error
                protocol.receive_data(data)
            else:
                received += data
                head_end = received.find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                head_done = True
                protocol.receive_data(received[: head_end + 4])
                received = received[head_end + 4 :]
                if protocol.state is State.CONNECTING:  # not a 101: the rest is the refusal's body
                    protocol.receive_data(received)
                    received = b""
            for event in protocol.events_received():
                if isinstance(event, Response):
                    self._check_response(event)
        if protocol.handshake_exc is not None:
            raise ClientConnectionError("handshake", str(protocol.handshake_exc))
        if received:
            self._pending = self._receive(received)

    def _check_response(self, response: Response) -> None:
        exc = self._protocol.handshake_exc
        if exc is None:
            return
        if isinstance(exc, InvalidStatus):
            raise ClientConnectionError(f"http_{exc.response.status_code}", str(exc))
        if isinstance(exc, InvalidHandshake):
            raise ClientConnectionError("handshake", str(exc))
        raise ClientConnectionError("handshake", repr(exc))

    # -- I/O -------------------------------------------------------------------------------

    def _read(self) -> bytes:
        assert self._sock is not None
        try:
            data: bytes = self._sock.recv(RECV_BYTES)
        except TimeoutError:
            raise ClientConnectionError("handshake_timeout", "no upgrade response in time") from None
        except OSError as exc:
            raise ClientConnectionError("reset", str(exc)) from None
        return data

    def _flush(self) -> None:
        data = self._protocol.data_to_send()
        if not data or self._sock is None:
            return
        with self._send_lock:
            try:
                for chunk in data:
                    if chunk:
                        self._sock.sendall(chunk)
            except OSError as exc:
                raise ClientConnectionError("reset", f"send failed: {exc}") from None

    def send(self, payload: bytes | str) -> None:
        """Send one message: text (``payload`` is UTF-8), or binary on a connection made ``binary``."""
        data = payload.encode() if isinstance(payload, str) else payload
        if self._debug:
            DEBUG_LOGGER.info("WebSocket SEND %s: %s", self.label, data.decode(errors="replace"))
        if not self.open:
            code = self._closed.code if self._closed is not None else None
            raise ClientConnectionError("not_open", "send on a closed connection", code=code)
        if self._binary:
            self._protocol.send_binary(data)
        else:
            self._protocol.send_text(data)
        self._flush()

    def ping(self, data: bytes = b"") -> None:
        self._protocol.send_ping(data)
        self._flush()

    def _receive(self, data: bytes) -> list[bytes]:
        """The messages ``data`` completes; answers pings; an empty ``data`` is the end of the stream.

        A close frame (or the end of the stream) raises ClientConnectionError, or, when messages came
        before it, is kept in ``_closed`` to be raised once they have been delivered."""
        frames = self._frames
        if not data:
            code, reason = frames.close or (None, "")
            raise ClientConnectionError(f"closed_{code}" if code else "eof", reason or "connection closed", code=code)
        try:
            out = frames.feed(data)
        except FrameError as exc:
            self._reply_close(exc.code, str(exc))
            raise ClientConnectionError("protocol_error", str(exc)) from None
        if frames.pings:
            for payload in frames.take_pings():
                self._protocol.send_pong(payload)
            gevent.spawn(self._flush_quietly)  # the reader must not wait behind a sender holding the lock
        if self._debug:
            for payload in out:
                DEBUG_LOGGER.info("WebSocket RECEIVE %s: %s", self.label, payload.decode(errors="replace"))
        if frames.close is not None:
            code, reason = frames.close
            self._reply_close(code if code != NO_STATUS_CODE else 1000, "")  # the close echo
            closed = ClientConnectionError(f"closed_{code}", reason, code=code)
            if not out:
                raise closed
            self._closed = closed  # deliver what came before the close frame first
        return out

    def recv_messages(self) -> list[bytes]:
        """Block until at least one complete data message arrived; return their payloads.

        Raises ClientConnectionError when the connection closes (``closed_<code>``) or breaks.
        """
        out, self._pending = self._pending, []
        if not out and self._closed is not None:
            raise self._closed
        while not out:
            try:
                data = self._sock.recv(RECV_BYTES) if self._sock is not None else b""
            except OSError as exc:
                self._drop_socket()
                raise ClientConnectionError("reset", str(exc)) from None
            try:
                out = self._receive(data)
            except ClientConnectionError:
                self._drop_socket()
                raise
        if self._closed is not None:
            self._drop_socket()
        return out

    # -- the process's reader --------------------------------------------------------------

    def start_reading(
        self,
        on_messages: OnMessages,
        on_lost: Callable[[ClientConnectionError], None],
        spawn: Callable[..., Any] = gevent.spawn,
    ) -> None:
        """Deliver every batch of messages to ``on_messages`` (with the kernel's receive time of the
        read, µs, where the socket stamps it; else None) and, once, the loss to ``on_lost``.

        ``on_messages`` runs in the process's reader greenlet and must not block; ``on_lost`` runs in
        a greenlet of its own made by ``spawn`` (it may reconnect). A TLS socket, whose bytes only its
        SSL object can read, gets a reading greenlet of its own (also made by ``spawn``)."""
        self._on_messages, self._on_lost, self._spawn = on_messages, on_lost, spawn
        pending, self._pending = self._pending, []
        if pending:
            on_messages(pending, None)
        if self._closed is not None or self._sock is None:
            self._lose(self._closed or ClientConnectionError("not_open", "connection already closed"))
        elif self._uri.secure:
            spawn(self._read_forever)
        else:
            self._reader = process_reader()
            self._reader.add(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        if self._sock is None:
            return
        arrived: int | None = None
        try:
            if self._raw is None:
                data = os.read(self._fd, RECV_BYTES)
            else:
                data, ancillary, _, _ = self._raw.recvmsg(RECV_BYTES, STAMP_SPACE)
                if ancillary:
                    seconds, nanoseconds = TIMESPEC.unpack_from(ancillary[0][2])
                    arrived = seconds * 1_000_000 + nanoseconds // 1000
        except BlockingIOError:
            return
        except OSError as exc:
            self._lose(ClientConnectionError("reset", str(exc)))
            return
        try:
            out = self._receive(data)
        except ClientConnectionError as exc:
            self._lose(exc)
            return
        if out and self._on_messages is not None:
            self._on_messages(out, arrived)
        if self._closed is not None:
            self._lose(self._closed)

    def _read_forever(self) -> None:
        try:
            while self._on_messages is not None:
                self._on_messages(self.recv_messages(), None)
        except ClientConnectionError as exc:
            self._lose(exc)

    def _lose(self, exc: ClientConnectionError) -> None:
        """The connection is gone: stop reading it and tell ``on_lost`` (once)."""
        on_lost, self._on_lost, self._on_messages = self._on_lost, None, None
        self._drop_socket()
        if on_lost is not None:
            self._spawn(on_lost, exc)

    def _close_quietly(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            if self._protocol.state is State.OPEN:
                self._protocol.send_close(code, reason)
            self._flush()

    def _reply_close(self, code: int, reason: str) -> None:
        """Answer the server with a close frame, without ever blocking the process's reader: the socket
        is about to be dropped, so the frame is written only if it can go at once (best effort)."""
        if self._uri.secure:  # a TLS connection is read by a greenlet of its own, which may wait
            self._close_quietly(code, reason)
            return
        with contextlib.suppress(Exception):
            if self._protocol.state is State.OPEN:
                self._protocol.send_close(code, reason)
            data = b"".join(self._protocol.data_to_send())
            if data and self._sock is not None and not self._send_lock.locked():
                os.write(self._fd, data)  # non-blocking; a partial frame right before the close is harmless

    def _flush_quietly(self) -> None:
        with contextlib.suppress(ClientConnectionError):
            self._flush()

    # -- closing ---------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self._sock is not None and self._protocol.state is State.OPEN and self._closed is None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and close the socket without waiting long for the echo."""
        self._on_messages = self._on_lost = None  # a close we asked for is not a loss
        self._close_quietly(code, reason)
        self._drop_socket()

    def abort(self) -> None:
        """Drop the TCP connection at once, with no close handshake (a network failure).

        Reading through ``start_reading``, the loss is reported to ``on_lost`` as ``reset``."""
        self._drop_socket()
        if self._on_lost is not None:
            self._lose(ClientConnectionError("reset", "connection aborted"))

    def _drop_socket(self) -> None:
        sock, self._sock, self._raw = self._sock, None, None
        if sock is not None:
            if self._reader is not None:
                self._reader.remove(self._fd)
            with contextlib.suppress(OSError):
                sock.close()


def _stamping(sock: gevent.socket.socket) -> _stdsocket.socket | None:
    """The plain socket under gevent's (its ``_sock``: non-blocking, not tied to the hub) with kernel
    receive timestamps switched on, or None where the system has none (then reads are timed on arrival
    in the reader)."""
    if SO_TIMESTAMPNS is None:
        return None
    raw: _stdsocket.socket = sock._sock
    try:
        raw.setsockopt(_stdsocket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return None
    return raw

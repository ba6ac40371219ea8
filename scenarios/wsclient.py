"""A WebSocket client for Locust users: websockets' Sans-I/O ``ClientProtocol`` over a gevent socket.

No threads: every blocking call is a gevent socket call, so thousands of connections share one
process. Parsing costs about 2 µs a frame (websockets' frame parser, C-accelerated masking), so one
process can receive hundreds of thousands of small messages per second.

``recv_messages`` returns the payloads of complete data messages (fragments reassembled); ping is
answered with pong by the protocol itself; a close frame or a dropped socket raises
``ClientConnectionError`` whose ``reason`` labels the failure (``closed_1012``, ``reset``, ...).
With ``debug`` set, every frame sent and received is logged, like the seed's ``enableWebSocketDebug``.
"""

from __future__ import annotations

import contextlib
import logging
import socket as _stdsocket
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.lock
import gevent.socket
import gevent.ssl
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.exceptions import ClientConnectionError

DEBUG_LOGGER = logging.getLogger("chatbench.ws")
RECV_BYTES = 256 * 1024
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
    """One client connection. Not shared between users; one greenlet reads, any may send."""

    __slots__ = (
        "_closed",
        "_debug",
        "_fragments",
        "_pending",
        "_protocol",
        "_send_lock",
        "_sock",
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
    ) -> None:
        self._uri = parse_uri(url)
        self._protocol = ClientProtocol(self._uri, max_size=max_message)
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._sock: gevent.socket.socket | None = None
        self._send_lock = gevent.lock.Semaphore()
        self._fragments: list[bytes] = []  # a fragmented message being reassembled
        self._pending: list[bytes] = []  # messages that arrived with the upgrade response
        self._closed: ClientConnectionError | None = None  # a close frame behind delivered messages
        self._debug = debug
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
        self._sock = sock
        connected = _now_us()
        try:
            self._handshake()
        except BaseException:
            self.abort()
            raise
        sock.settimeout(None)
        return ConnectTiming(connected - start, _now_us() - connected)

    def _handshake(self) -> None:
        protocol = self._protocol
        protocol.send_request(protocol.connect())
        self._flush()
        while protocol.state is State.CONNECTING:
            data = self._read()
            if not data:
                raise ClientConnectionError("handshake_eof", "server closed during the upgrade")
            protocol.receive_data(data)
            events = protocol.events_received()
            for event in events:
                if isinstance(event, Response):
                    self._check_response(event)
            self._pending = self._take_messages([e for e in events if not isinstance(e, Response)])
        if protocol.handshake_exc is not None:
            raise ClientConnectionError("handshake", str(protocol.handshake_exc))

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
        """Send one text frame (``payload`` is UTF-8 JSON)."""
        data = payload.encode() if isinstance(payload, str) else payload
        if self._debug:
            DEBUG_LOGGER.info("WebSocket SEND %s: %s", self.label, data.decode(errors="replace"))
        if self._protocol.state is not State.OPEN:
            raise ClientConnectionError("not_open", "send on a closed connection", code=self._close_received()[0])
        self._protocol.send_text(data)
        self._flush()

    def ping(self, data: bytes = b"") -> None:
        self._protocol.send_ping(data)
        self._flush()

    def recv_messages(self) -> list[bytes]:
        """Block until at least one complete data message arrived; return their payloads.

        Raises ClientConnectionError when the connection closes (``closed_<code>``) or breaks.
        """
        protocol = self._protocol
        out, self._pending = self._pending, []
        if not out and self._closed is not None:
            raise self._closed
        while not out:
            try:
                data = self._sock.recv(RECV_BYTES) if self._sock is not None else b""
            except OSError as exc:
                self.abort()
                raise ClientConnectionError("reset", str(exc)) from None
            if not data:
                protocol.receive_eof()
                self.abort()
                code, reason = self._close_received()
                raise ClientConnectionError(
                    f"closed_{code}" if code else "eof", reason or "connection closed", code=code
                )
            protocol.receive_data(data)
            out = self._take_messages(protocol.events_received())
            if protocol.writes:  # pong replies
                self._flush_quietly()
            if protocol.parser_exc is not None:
                self.abort()
                raise ClientConnectionError("protocol_error", str(protocol.parser_exc))
        if self._debug:
            for payload in out:
                DEBUG_LOGGER.info("WebSocket RECEIVE %s: %s", self.label, payload.decode(errors="replace"))
        return out

    def _close_received(self) -> tuple[int | None, str]:
        """The code and reason of the server's close frame, if one came."""
        close = self._protocol.close_rcvd
        return (None, "") if close is None else (int(close.code), close.reason)

    def _take_messages(self, frames: list[Any]) -> list[bytes]:
        """Complete data messages among ``frames``; raises on a close frame."""
        out: list[bytes] = []
        for frame in frames:
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    out.append(frame.data)
                else:
                    self._fragments = [frame.data]
            elif opcode is Opcode.CONT:
                self._fragments.append(frame.data)
                if frame.fin:
                    out.append(b"".join(self._fragments))
                    self._fragments = []
            elif opcode is Opcode.CLOSE:
                self._flush_quietly()  # the close echo
                self.abort()
                code, reason = self._close_received()
                closed = ClientConnectionError(f"closed_{code}", reason, code=code)
                if not out:
                    raise closed
                self._closed = closed  # deliver what came before the close frame first
        return out

    def _flush_quietly(self) -> None:
        with contextlib.suppress(ClientConnectionError):
            self._flush()

    # -- closing ---------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self._sock is not None and self._protocol.state is State.OPEN

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame and close the socket without waiting long for the echo."""
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            self._flush_quietly()
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection at once, with no close handshake (a network failure)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

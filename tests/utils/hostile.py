"""Raw-socket helpers for hostile-input tests: exact HTTP bytes in, every response parsed back; WebSocket
frames built by hand (fragments, pings, binary) over a socket that reads only when told to."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools

from tests.utils import TIMEOUT, RunningServer


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class _Collector:
    replies: list[Reply] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if status >= 200:
            self.replies.append(Reply(status, self.headers, bytes(self.body)))
        self.headers, self.body = {}, bytearray()


def parse_replies(data: bytes) -> list[Reply]:
    """Every complete HTTP response in ``data``, in order (a 1xx interim answer is skipped)."""
    collector = _Collector()
    collector.parser = httptools.HttpResponseParser(collector)
    with contextlib.suppress(httptools.HttpParserError):  # a response cut short, or what follows a 101
        collector.parser.feed_data(data)
    return collector.replies


def connect(server: RunningServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(
    sock: socket.socket, timeout: float = TIMEOUT, done: Callable[[bytes], bool] | None = None
) -> bytes:
    """Everything the server sends until it closes, ``timeout`` passes, or ``done(received)`` says enough."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        received += chunk
        if done is not None and done(received):
            break
    return received


def exchange(server: RunningServer, data: bytes, *, expect: int | None = None, timeout: float = TIMEOUT) -> list[Reply]:
    """Send raw bytes on a new connection; the responses, reading until ``expect`` came or the server closed."""
    with connect(server) as sock:
        sock.sendall(data)
        enough = None if expect is None else (lambda received: len(parse_replies(received)) >= expect)
        return parse_replies(read_until_closed(sock, timeout, enough))


def request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """One HTTP/1.1 request's bytes (Host added; Content-Length when there is a body)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- WebSocket by hand ------------------------------------------------------------------------------

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A masked client frame (the mask is zero, so the payload goes as it is)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + b"\0\0\0\0" + payload


def open_websocket(server: RunningServer, token: str, *, rcvbuf: int | None = None) -> socket.socket:
    """A raw socket past the 101 (only the handshake's bytes are read)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    sock.sendall(request("GET", f"/ws?token={token}", headers))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def close_code(data: bytes) -> int | None:
    """The code of the first close frame in a stream of server frames (unmasked), None without one."""
    offset = 0
    while offset + 2 <= len(data):
        opcode, size = data[offset] & 0x0F, data[offset + 1] & 0x7F
        offset += 2
        if size == 126:
            size, offset = struct.unpack("!H", data[offset : offset + 2])[0], offset + 2
        elif size == 127:
            size, offset = struct.unpack("!Q", data[offset : offset + 8])[0], offset + 8
        if opcode == CLOSE and offset + 2 <= len(data):
            code: int = struct.unpack("!H", data[offset : offset + 2])[0]
            return code
        offset += size
    return None

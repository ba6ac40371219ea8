"""A lean asyncio WebSocket client for load: parses server frames by hand and hands each text payload
to a callback, so that thousands of receivers cost the load generator little CPU.

Client frames are masked with an all-zero key (valid per RFC 6455, and XOR with zero is free).
No extensions are negotiated, so the server never compresses for it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from typing import Final, cast

_ZERO_MASK: Final = b"\x00\x00\x00\x00"
_OP_TEXT: Final = 0x1
_OP_CLOSE: Final = 0x8
_OP_PING: Final = 0x9
UPGRADE_TIMEOUT_S: Final = 10.0


def frame(payload: bytes, opcode: int = _OP_TEXT) -> bytes:
    """A final, masked (zero key) client frame."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", size)
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", size)
    return header + _ZERO_MASK + payload


class LeanWebSocket(asyncio.Protocol):
    """One client connection: upgrade, then ``on_text(payload)`` for every text frame."""

    def __init__(self, request: bytes, on_text: Callable[[bytes], None]) -> None:
        self._request = request
        self._on_text = on_text
        self._buffer = bytearray()
        self._upgraded = False
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during the upgrade: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def send_text(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(payload))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(struct.pack("!H", 1000), _OP_CLOSE))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status_line = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if b" 101 " not in status_line + b" ":
                self.opened.set_exception(ConnectionError(status_line.decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._parse(buffer)

    def _parse(self, buffer: bytearray) -> None:
        start, available = 0, len(buffer)
        view = memoryview(buffer)
        try:
            while available - start >= 2:
                opcode = buffer[start] & 0x0F
                size = buffer[start + 1] & 0x7F
                header = 2
                if size == 126:
                    if available - start < 4:
                        break
                    size = (buffer[start + 2] << 8) | buffer[start + 3]
                    header = 4
                elif size == 127:
                    if available - start < 10:
                        break
                    size = int.from_bytes(view[start + 2 : start + 10], "big")
                    header = 10
                end = start + header + size
                if end > available:
                    break
                payload = bytes(view[start + header : end])
                start = end
                if opcode == _OP_TEXT:
                    self._on_text(payload)
                elif opcode == _OP_PING and self.transport is not None:
                    self.transport.write(frame(payload, 0xA))
                elif opcode == _OP_CLOSE:
                    self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                    if self.transport is not None:
                        self.transport.close()
        finally:
            view.release()
        del buffer[:start]


async def connect(host: str, port: int, path: str, on_text: Callable[[bytes], None]) -> LeanWebSocket:
    """Open and upgrade one connection (plain ws:// only)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: LeanWebSocket(request, on_text), host, port)
    await asyncio.wait_for(protocol.opened, UPGRADE_TIMEOUT_S)
    return protocol

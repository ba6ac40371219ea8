"""A lean reader of server-to-client WebSocket frames (RFC 6455 §5.2): the client's receive hot path.

A server's frames are never masked and, with no extension negotiated, need no transformation, so
reading one is a 2 to 10 byte header and a slice. websockets' Sans-I/O parser (a generator and a
``Frame`` object per frame) costs several times more, and a load generator reads hundreds of
thousands of frames a second; websockets still does the upgrade and everything the client sends.

Pure: bytes in, complete data messages out (fragments reassembled), with pings to answer and the
close frame kept for the caller. A violation of the framing raises ``FrameError``.
"""

from __future__ import annotations

from typing import Final

TEXT: Final = 0x1
BINARY: Final = 0x2
CONT: Final = 0x0
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
NO_STATUS: Final = 1005  # a close frame without a code (RFC 6455 §7.1.5)


class FrameError(Exception):
    """The server broke the framing; ``code`` is the close code the client should answer with."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class ServerFrames:
    """Frames from one connection's byte stream, fed as they arrive."""

    __slots__ = ("_buffer", "_fragments", "_max_message", "close", "pings")

    def __init__(self, max_message: int) -> None:
        self._max_message = max_message
        self._buffer = b""
        self._fragments: list[bytes] | None = None  # a fragmented message being reassembled
        self.pings: list[bytes] = []  # payloads to answer with pong, taken by the caller
        self.close: tuple[int, str] | None = None  # (code, reason) once the close frame came

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads of the data messages ``data`` completes; nothing after a close frame."""
        buf = self._buffer + data if self._buffer else data
        end = len(buf)
        pos = 0
        out: list[bytes] = []
        while end - pos >= 2 and self.close is None:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            head = pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[head : head + 2])
                head += 2
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[head : head + 8])
                head += 8
            if second & 0x80 or first & 0x70:
                raise FrameError("masked or RSV-flagged frame from the server")
            if length > self._max_message:
                raise FrameError(f"frame of {length} bytes over the {self._max_message} limit", 1009)
            stop = head + length
            if stop > end:
                break
            opcode = first & 0x0F
            if (opcode == TEXT or opcode == BINARY) and self._fragments is None:  # noqa: SIM109 (hot path: no tuple)
                if first & 0x80:
                    out.append(buf[head:stop])
                else:
                    self._fragments = [buf[head:stop]]
            else:
                self._control(opcode, first & 0x80, buf[head:stop], out)
            pos = stop
        self._buffer = buf[pos:] if pos < end and self.close is None else b""
        return out

    def _control(self, opcode: int, fin: int, payload: bytes, out: list[bytes]) -> None:
        """Everything but an unfragmented data frame: continuations, ping, pong, close."""
        if opcode == CONT:
            if self._fragments is None:
                raise FrameError("continuation frame with no message to continue")
            self._fragments.append(payload)
            if sum(map(len, self._fragments)) > self._max_message:
                raise FrameError(f"message over the {self._max_message} byte limit", 1009)
            if fin:
                out.append(b"".join(self._fragments))
                self._fragments = None
        elif opcode in (TEXT, BINARY):
            raise FrameError("new data frame inside a fragmented message")
        elif opcode >= CLOSE and (not fin or len(payload) > 125):
            raise FrameError("fragmented or oversized control frame")
        elif opcode == PING:
            self.pings.append(payload)
        elif opcode == CLOSE:
            self.close = _close_payload(payload)
        elif opcode != PONG:
            raise FrameError(f"unknown opcode {opcode:#x}")

    def take_pings(self) -> list[bytes]:
        pings, self.pings = self.pings, []
        return pings


def _close_payload(payload: bytes) -> tuple[int, str]:
    if not payload:
        return NO_STATUS, ""
    if len(payload) < 2:
        raise FrameError("close frame with a one-byte payload")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError("close reason is not UTF-8", 1007) from None
    return int.from_bytes(payload[:2]), reason

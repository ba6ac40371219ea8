"""Engine.IO 4 and Socket.IO 5 packets over WebSocket, text only (socket.io-protocol v5). Pure.

Each WebSocket message is one Engine.IO packet: a type digit and its data (``0`` open, ``1`` close,
``2`` ping, ``3`` pong, ``4`` message). A message carries one Socket.IO packet: a type digit
(``0`` CONNECT, ``1`` DISCONNECT, ``2`` EVENT, ``3`` ACK, ``4`` CONNECT_ERROR), the namespace when it is
not ``/`` (``/chat,``), an ack id (digits), then JSON: ``42["chat message",{...}]``, ``431[{...}]``.
Binary attachments (types 5 and 6) are not used by chat apps of this kind and are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

PATH: Final = "/socket.io/"
QUERY: Final = "EIO=4&transport=websocket"

OPEN: Final = 0x30  # Engine.IO types, as the first byte of the message
CLOSE: Final = 0x31
PING: Final = 0x32
PONG: Final = 0x33
MESSAGE: Final = 0x34

CONNECT: Final = 0x30  # Socket.IO types, as the second byte
DISCONNECT: Final = 0x31
EVENT: Final = 0x32
ACK: Final = 0x33
CONNECT_ERROR: Final = 0x34

PONG_PACKET: Final = b"3"
Loads = Callable[[bytes], Any]


class SocketIOError(ValueError):
    """Bytes that are not an Engine.IO / Socket.IO packet this client reads."""


@dataclass(slots=True, frozen=True)
class Packet:
    """One Socket.IO packet (``kind`` one of the Socket.IO types) or a bare Engine.IO one (``engine``)."""

    engine: int
    kind: int = -1
    namespace: str = "/"
    ack_id: int | None = None
    data: Any = None


def _prefix(kind: int, namespace: str, ack_id: int | None) -> bytes:
    ns = "" if namespace == "/" else f"{namespace},"
    return b"4" + bytes((kind,)) + ns.encode() + (b"" if ack_id is None else str(ack_id).encode())


def connect(namespace: str = "/", auth: bytes = b"") -> bytes:
    """Connect to a namespace (``auth``: JSON of the handshake's auth object, or nothing)."""
    return _prefix(CONNECT, namespace, None) + auth


def event(payload: bytes, namespace: str = "/", ack_id: int | None = None) -> bytes:
    """An EVENT; ``payload`` is the JSON array ``["name", arg, ...]``."""
    return _prefix(EVENT, namespace, ack_id) + payload


def decode(message: bytes, loads: Loads) -> Packet:
    """One WebSocket message; the JSON part (if any) is decoded with ``loads``."""
    if not message:
        raise SocketIOError("empty Engine.IO packet")
    engine = message[0]
    if engine != MESSAGE:
        if engine == OPEN and len(message) > 1:
            return Packet(engine, data=loads(message[1:]))
        if OPEN <= engine <= 0x36:  # open, close, ping, pong, upgrade, noop
            return Packet(engine, data=message[1:])
        raise SocketIOError(f"unknown Engine.IO packet type {message[:1]!r}")
    if len(message) < 2:
        raise SocketIOError("a message packet without a Socket.IO type")
    kind = message[1]
    if not CONNECT <= kind <= CONNECT_ERROR:
        raise SocketIOError(f"unsupported Socket.IO packet type {message[1:2]!r}")
    pos, namespace = 2, "/"
    if message[2:3] == b"/":
        comma = message.find(b",", 2)
        if comma < 0:
            raise SocketIOError("namespace without its comma")
        namespace, pos = message[2:comma].decode(), comma + 1
    digits = pos
    while digits < len(message) and 0x30 <= message[digits] <= 0x39:
        digits += 1
    ack_id = int(message[pos:digits]) if digits > pos else None
    try:
        data = loads(message[digits:]) if digits < len(message) else None
    except ValueError as exc:
        raise SocketIOError(f"bad JSON in a Socket.IO packet: {exc}") from None
    return Packet(MESSAGE, kind, namespace, ack_id, data)

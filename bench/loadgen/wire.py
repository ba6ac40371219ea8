"""The seam between the load users and a server's wire protocol: one object per protocol, picked by name.

A user never spells a protocol's field names. It asks its ``Wire`` for the bytes of a subscribe, a
publish, a read receipt or a status change, and for the events in a frame the server sent, in the
canonical shapes of ``bench.core.protocol`` (``{"type": "CHAT_MESSAGE", "channelId", "message": {"id",
"clientMsgId", ...}}``, ``{"type": "SUBSCRIBED", "channelId", "lastMessageId"}``, ...). The benchmark tag
(publisher, sequence, intended and sent times) goes wherever the protocol can carry it, and the wire puts
it back under ``clientMsgId``: integrity and latency then assume nothing of the server beyond delivering
the payload.

A wire also says how to open the connection: the subprotocols to offer at the upgrade, text or binary
messages, its default path, frames to send right after the upgrade (a protocol's own login, answered by
the ``OPENED`` event) and a keepalive frame with its interval; replies it owes the server (a pong) come
back from ``decode`` as ``SEND`` events for the user to send.

``chat`` is this project's protocol (docs/PROTOCOL.md), and the default; ``socketio``, ``stomp`` and
``mqtt`` are in ``bench.loadgen.adapters`` (docs/ADAPTERS.md). A wire declares what it can do
(``capabilities``); a scenario that needs more says so before it runs (``require``, exit 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, Protocol

import orjson

from bench.core import protocol
from bench.core.exceptions import UsageError
from bench.loadgen import adapters
from bench.loadgen.wirekit import (
    ECHO,
    HISTORY,
    LAST_MESSAGE_ID,
    PRESENCE,
    READ_RECEIPTS,
    Credentials,
    ws_url,
)

__all__ = ["ECHO", "HISTORY", "LAST_MESSAGE_ID", "PRESENCE", "READ_RECEIPTS", "Credentials", "ws_url"]


class Wire(Protocol):
    """One wire protocol, as the load users see it."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The WebSocket subprotocols to offer at the upgrade."""
        ...

    @property
    def binary(self) -> bool:
        """Whether frames are sent as binary WebSocket messages (else text)."""
        ...

    @property
    def default_path(self) -> str:
        """The WebSocket path when ``--ws-path`` is not given."""
        ...

    @property
    def keepalive_s(self) -> float | None:
        """How often the user sends ``keepalive()`` on an open connection; None: never."""
        ...

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        """The WebSocket URL for Locust's ``--host`` (http(s):// or ws(s)://), the token placed as it wants."""
        ...

    def opening(self, credentials: Credentials) -> list[bytes]:
        """Frames to send right after the upgrade (a login); when there are any, the user waits for the
        ``OPENED`` event before it subscribes."""
        ...

    def keepalive(self) -> bytes: ...

    def subscribe(self, channel: str, now_ms: int) -> bytes: ...

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes: ...

    def read_receipt(self, channel: str, message_id: int, now_ms: int) -> bytes: ...

    def user_status(self, status: str, now_ms: int) -> bytes: ...

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        """The events of one frame, in canonical shapes (plus ``SEND``, ``OPENED`` and ``ACKED`` of
        ``bench.loadgen.wirekit``); ProtocolError when it is not the protocol's. The events may be shared
        by every user of the process that received the same bytes, so decoding depends on the bytes alone."""
        ...


class ChatWire:
    """This project's protocol: JSON objects, the tag in ``clientMsgId``, arrays where negotiated."""

    name: ClassVar[str] = "chat"
    capabilities: ClassVar[frozenset[str]] = frozenset({HISTORY, READ_RECEIPTS, PRESENCE, LAST_MESSAGE_ID, ECHO})
    subprotocols: ClassVar[tuple[str, ...]] = (protocol.BATCH_SUBPROTOCOL,)  # arrays where offered: fewer frames
    binary: ClassVar[bool] = False
    default_path: ClassVar[str] = "/ws"
    keepalive_s: ClassVar[float | None] = None  # the server pings; the client answers

    def __init__(self, settings: Mapping[str, str] | None = None) -> None:
        if settings:
            raise UsageError(f"protocol chat has no settings (given {', '.join(sorted(settings))})")

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        return ws_url(target, ws_path, token)

    def opening(self, credentials: Credentials) -> list[bytes]:
        return []  # the token in the URL is the login

    def keepalive(self) -> bytes:
        return b""

    def subscribe(self, channel: str, now_ms: int) -> bytes:
        return orjson.dumps(protocol.subscribe(channel, now_ms))

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes:
        return orjson.dumps(protocol.publish(channel, content, now_ms, tag, message_type))

    def read_receipt(self, channel: str, message_id: int, now_ms: int) -> bytes:
        return orjson.dumps(protocol.read_receipt(channel, message_id, now_ms))

    def user_status(self, status: str, now_ms: int) -> bytes:
        return orjson.dumps(protocol.user_status(status, now_ms))

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        return protocol.decode_frame(payload)


WIRES: Final[dict[str, Callable[[Mapping[str, str]], Wire]]] = {
    ChatWire.name: ChatWire,
    adapters.SocketIOWire.name: adapters.SocketIOWire,
    adapters.StompWire.name: adapters.StompWire,
    adapters.MqttWire.name: adapters.MqttWire,
}
DEFAULT_WIRE: Final = ChatWire.name


def wire_for(name: str, settings: Mapping[str, str] | None = None) -> Wire:
    """The wire called ``name`` with its ``settings``; UsageError naming the known ones otherwise."""
    try:
        factory = WIRES[name]
    except KeyError:
        raise UsageError(f"unknown protocol {name!r}; known: {', '.join(sorted(WIRES))}") from None
    return factory(settings or {})


def require(wire: Wire, needed: frozenset[str], scenario: str) -> None:
    """UsageError when ``wire`` cannot do what ``scenario`` needs: say so, rather than run half of it."""
    missing = sorted(needed - wire.capabilities)
    if missing:
        raise UsageError(f"{scenario} needs {', '.join(missing)}, which protocol {wire.name!r} does not offer")

"""The seam between the load users and a server's wire protocol: one object per protocol, picked by name.

A user never spells a protocol's field names. It asks its ``Wire`` for the bytes of a subscribe, a
publish, a read receipt or a status change, and for the events in a frame the server sent, in the
canonical shapes of ``bench.core.protocol`` (``{"type": "CHAT_MESSAGE", "channelId", "message": {"id",
"clientMsgId", ...}}``, ``{"type": "SUBSCRIBED", "channelId", "lastMessageId"}``, ...). The benchmark tag
(publisher, sequence, intended and sent times) goes wherever the protocol can carry it, and the wire puts
it back under ``clientMsgId``: integrity and latency then assume nothing of the server beyond delivering
the payload.

``chat`` is this project's protocol (docs/PROTOCOL.md), and the default. A wire declares what it can do
(``capabilities``); a scenario that needs more says so before it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Final, Protocol
from urllib.parse import quote, urlsplit

import orjson

from bench.core import protocol
from bench.core.exceptions import UsageError

# What a wire may be able to do; scenarios name what they need.
HISTORY: Final = "history"  # paging through GET history (infinite scroll, catch-up after a reconnect)
READ_RECEIPTS: Final = "read_receipts"
PRESENCE: Final = "presence"
LAST_MESSAGE_ID: Final = "last_message_id"  # SUBSCRIBED says where the channel stood
ECHO: Final = "echo"  # the publisher receives its own message (its acknowledgement)


class Wire(Protocol):
    """One wire protocol, as the load users see it."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        """The WebSocket URL for Locust's ``--host`` (http(s):// or ws(s)://), the token placed as it wants."""
        ...

    def subscribe(self, channel: str, now_ms: int) -> bytes: ...

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes: ...

    def read_receipt(self, channel: str, message_id: int, now_ms: int) -> bytes: ...

    def user_status(self, status: str, now_ms: int) -> bytes: ...

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        """The events of one frame, in canonical shapes; ProtocolError when it is not the protocol's."""
        ...


def ws_url(target: str, ws_path: str, token: str | None) -> str:
    """``ws(s)://HOST:PORT/PATH?token=...`` for an http(s):// or ws(s):// target."""
    parts = urlsplit(target)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme or "ws")
    url = f"{scheme}://{parts.netloc}{ws_path}"
    return url if token is None else f"{url}?token={quote(token, safe='')}"


class ChatWire:
    """This project's protocol: JSON objects, the tag in ``clientMsgId``, arrays where negotiated."""

    name: ClassVar[str] = "chat"
    capabilities: ClassVar[frozenset[str]] = frozenset({HISTORY, READ_RECEIPTS, PRESENCE, LAST_MESSAGE_ID, ECHO})

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        return ws_url(target, ws_path, token)

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


WIRES: Final[dict[str, Callable[[], Wire]]] = {ChatWire.name: ChatWire}
DEFAULT_WIRE: Final = ChatWire.name


def wire_for(name: str) -> Wire:
    """The wire called ``name``; UsageError naming the known ones otherwise."""
    try:
        return WIRES[name]()
    except KeyError:
        raise UsageError(f"unknown protocol {name!r}; known: {', '.join(sorted(WIRES))}") from None


def require(wire: Wire, needed: frozenset[str], scenario: str) -> None:
    """UsageError when ``wire`` cannot do what ``scenario`` needs: say so, rather than run half of it."""
    missing = sorted(needed - wire.capabilities)
    if missing:
        raise UsageError(f"{scenario} needs {', '.join(missing)}, which protocol {wire.name!r} does not offer")

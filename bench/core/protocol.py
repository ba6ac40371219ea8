"""The chat wire protocol (docs/PROTOCOL.md): message types, frame decoding, validation, builders.

Pure: no I/O, no asyncio, no gevent. The bundled server and the Locust clients both use it.
Frames are JSON text; a server frame is one object or, with batching, an array of objects.

The benchmark tag: load-generating publishers put ``"{publisher}:{seq}:{intended_us}:{sent_us}"`` in
``clientMsgId`` (an opaque field every server echoes), so that any receiver can count lost, duplicated
and reordered messages per publisher and measure latency from the intended send time (``intended_us``,
microseconds since the epoch, the schedule) as well as from the actual send (``sent_us``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from bench.core.exceptions import ProtocolError

# Client -> server
SUBSCRIBE: Final = "SUBSCRIBE"
UNSUBSCRIBE: Final = "UNSUBSCRIBE"
PUBLISH: Final = "PUBLISH"
READ_RECEIPT: Final = "READ_RECEIPT"
USER_STATUS: Final = "USER_STATUS"
# Server -> client (READ_RECEIPT and USER_STATUS go both ways)
SUBSCRIBED: Final = "SUBSCRIBED"
UNSUBSCRIBED: Final = "UNSUBSCRIBED"
CHAT_MESSAGE: Final = "CHAT_MESSAGE"
NOTIFICATION: Final = "NOTIFICATION"
ERROR: Final = "ERROR"

CLIENT_TYPES: Final = frozenset({SUBSCRIBE, UNSUBSCRIBE, PUBLISH, READ_RECEIPT, USER_STATUS})
MESSAGE_TYPES: Final = frozenset({"TEXT", "FILE", "IMAGE"})
STATUSES: Final = frozenset({"ONLINE", "AWAY", "OFFLINE"})

# ERROR codes
BAD_JSON: Final = "BAD_JSON"
BAD_MESSAGE: Final = "BAD_MESSAGE"  # not an object, or a field of the wrong type or value
UNKNOWN_TYPE: Final = "UNKNOWN_TYPE"
MISSING_FIELD: Final = "MISSING_FIELD"
NOT_SUBSCRIBED: Final = "NOT_SUBSCRIBED"
FORBIDDEN: Final = "FORBIDDEN"
RATE_LIMITED: Final = "RATE_LIMITED"
CONTENT_FILTERED: Final = "CONTENT_FILTERED"
INTERNAL: Final = "INTERNAL"

# The largest integer every JSON peer (JavaScript included) reads exactly; bounds client numbers.
MAX_SAFE_INTEGER: Final = 2**53 - 1

# Close codes
CLOSE_POLICY: Final = 1008  # sustained abuse (rate limit)
CLOSE_TOO_BIG: Final = 1009  # oversize frame
CLOSE_RESTART: Final = 1012  # server restart / shutdown

# A client that offers this WebSocket subprotocol (or sends ?batch=1) may get JSON arrays of messages in one
# frame; every other client gets one object per frame (the seed's web client among them).
BATCH_SUBPROTOCOL: Final = "chatbench.batch"

Loads = Callable[[bytes | str], Any]


def orjson_dumps(obj: Any) -> bytes:
    """Encode with orjson (the fast default)."""
    return orjson.dumps(obj)


def decode_frame(data: bytes | str, loads: Loads = orjson.loads) -> list[dict[str, Any]]:
    """Decode one server frame into its messages: a single object or a batched array of them."""
    try:
        obj = loads(data)
    except ValueError as exc:
        raise ProtocolError(BAD_JSON, f"frame is not JSON: {exc}") from None
    if isinstance(obj, dict):
        return [obj]
    if isinstance(obj, list) and all(isinstance(item, dict) for item in obj):
        return obj
    raise ProtocolError(BAD_MESSAGE, "frame must be a JSON object or an array of objects")


# --- client messages, validated ------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Subscribe:
    channel_id: str


@dataclass(slots=True, frozen=True)
class Unsubscribe:
    channel_id: str


@dataclass(slots=True, frozen=True)
class Publish:
    channel_id: str
    message_type: str
    content: str
    timestamp: int
    client_msg_id: str | None


@dataclass(slots=True, frozen=True)
class ReadReceipt:
    channel_id: str
    message_id: int | str


@dataclass(slots=True, frozen=True)
class UserStatus:
    status: str


ClientMessage = Subscribe | Unsubscribe | Publish | ReadReceipt | UserStatus


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    try:
        value = obj[name]
    except KeyError:
        raise ProtocolError(MISSING_FIELD, f"{obj.get('type')} needs '{name}'") from None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProtocolError(BAD_MESSAGE, f"'{name}' has the wrong type")
    return value


def _channel(obj: dict[str, Any]) -> str:
    value = _field(obj, "channelId", (str, int))
    channel = str(value)
    if not channel or len(channel) > 128:
        raise ProtocolError(BAD_MESSAGE, "'channelId' must be 1 to 128 characters")
    return channel


def parse_client_message(data: bytes | str, loads: Loads = orjson.loads) -> ClientMessage:
    """Validate one client frame (one JSON object) into a typed message, or raise ProtocolError."""
    try:
        obj = loads(data)
    except ValueError as exc:
        raise ProtocolError(BAD_JSON, f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_MESSAGE, "a client frame must be one JSON object")
    kind = obj.get("type")
    if kind is None:
        raise ProtocolError(MISSING_FIELD, "message needs 'type'")
    if kind == PUBLISH:
        message_type = obj.get("messageType", "TEXT")
        if not isinstance(message_type, str) or message_type not in MESSAGE_TYPES:
            raise ProtocolError(BAD_MESSAGE, f"'messageType' must be one of {sorted(MESSAGE_TYPES)}")
        client_msg_id = obj.get("clientMsgId")
        if client_msg_id is not None and not isinstance(client_msg_id, str):
            raise ProtocolError(BAD_MESSAGE, "'clientMsgId' must be a string")
        timestamp = obj.get("timestamp", 0)
        if (
            not isinstance(timestamp, int | float)
            or isinstance(timestamp, bool)
            or not -MAX_SAFE_INTEGER <= timestamp <= MAX_SAFE_INTEGER  # also refuses NaN and infinities
        ):
            raise ProtocolError(BAD_MESSAGE, "'timestamp' must be a finite number of milliseconds")
        return Publish(_channel(obj), message_type, _field(obj, "content", str), int(timestamp), client_msg_id)
    if kind == SUBSCRIBE:
        return Subscribe(_channel(obj))
    if kind == UNSUBSCRIBE:
        return Unsubscribe(_channel(obj))
    if kind == READ_RECEIPT:
        return ReadReceipt(_channel(obj), _field(obj, "messageId", (int, str)))
    if kind == USER_STATUS:
        status = _field(obj, "status", str)
        if status not in STATUSES:
            raise ProtocolError(BAD_MESSAGE, f"'status' must be one of {sorted(STATUSES)}")
        return UserStatus(status)
    raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {kind!r}")


# --- builders: one dict per message, so that both sides spell fields the same way -------------


def subscribe(channel_id: str, timestamp: int) -> dict[str, Any]:
    return {"type": SUBSCRIBE, "channelId": channel_id, "timestamp": timestamp}


def unsubscribe(channel_id: str, timestamp: int) -> dict[str, Any]:
    return {"type": UNSUBSCRIBE, "channelId": channel_id, "timestamp": timestamp}


def publish(
    channel_id: str, content: str, timestamp: int, client_msg_id: str, message_type: str = "TEXT"
) -> dict[str, Any]:
    return {
        "type": PUBLISH,
        "channelId": channel_id,
        "messageType": message_type,
        "content": content,
        "timestamp": timestamp,
        "clientMsgId": client_msg_id,
    }


def read_receipt(channel_id: str, message_id: int | str, timestamp: int) -> dict[str, Any]:
    return {"type": READ_RECEIPT, "channelId": channel_id, "messageId": message_id, "timestamp": timestamp}


def user_status(status: str, timestamp: int, user_id: str | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": USER_STATUS, "status": status, "timestamp": timestamp}
    if user_id is not None:
        msg["userId"] = user_id
    return msg


def subscribed(channel_id: str, last_message_id: int, online: list[str], timestamp: int) -> dict[str, Any]:
    return {
        "type": SUBSCRIBED,
        "channelId": channel_id,
        "lastMessageId": last_message_id,
        "online": online,
        "timestamp": timestamp,
    }


def unsubscribed(channel_id: str, timestamp: int) -> dict[str, Any]:
    return {"type": UNSUBSCRIBED, "channelId": channel_id, "timestamp": timestamp}


def chat_message(channel_id: str, message: dict[str, Any], timestamp: int) -> dict[str, Any]:
    """``message`` is the stored form: id, senderId, messageType, content, timestamp,
    serverTimestamp, clientMsgId."""
    return {"type": CHAT_MESSAGE, "channelId": channel_id, "message": message, "timestamp": timestamp}


def read_receipt_event(channel_id: str, message_id: int | str, user_id: str, timestamp: int) -> dict[str, Any]:
    return {
        "type": READ_RECEIPT,
        "channelId": channel_id,
        "messageId": message_id,
        "userId": user_id,
        "timestamp": timestamp,
    }


def notification(kind: str, timestamp: int, **fields: Any) -> dict[str, Any]:
    return {"type": NOTIFICATION, "kind": kind, "timestamp": timestamp, **fields}


def error(code: str, reason: str, timestamp: int) -> dict[str, Any]:
    return {"type": ERROR, "code": code, "reason": reason, "timestamp": timestamp}


# --- the benchmark tag carried in clientMsgId ------------------------------------------------


@dataclass(slots=True, frozen=True)
class BenchTag:
    """Who published a message, its sequence number, and when it was meant to go and went (µs)."""

    publisher: str
    seq: int
    intended_us: int
    sent_us: int

    def encode(self) -> str:
        return f"{self.publisher}:{self.seq}:{self.intended_us}:{self.sent_us}"


def format_tag(publisher: str, seq: int, intended_us: int, sent_us: int) -> str:
    """The clientMsgId for a benchmark message (the hot-path form of ``BenchTag.encode``)."""
    return f"{publisher}:{seq}:{intended_us}:{sent_us}"


def split_tag(client_msg_id: object) -> tuple[str, int, int, int] | None:
    """``(publisher, seq, intended_us, sent_us)`` from a clientMsgId, or None when it is not a tag.

    The receive loop's form of ``parse_tag`` (a plain tuple, no object); any id another client chose,
    colons and all, is None rather than an error."""
    if client_msg_id.__class__ is not str:
        return None
    parts = client_msg_id.rsplit(":", 3)
    if len(parts) != 4:
        return None
    try:
        return parts[0], int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None


def parse_tag(client_msg_id: object) -> BenchTag | None:
    """The tag in a clientMsgId, or None when the message was not published by a benchmark user."""
    fields = split_tag(client_msg_id)
    return None if fields is None else BenchTag(*fields)

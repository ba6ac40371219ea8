"""Wires for protocols of other ecosystems: Socket.IO, STOMP and MQTT, over the one ``Wire`` seam.

Each turns the user's subscribe and publish into its protocol's frames (codecs in ``bench.core``:
``socketio``, ``stomp``, ``mqtt``) and what the server sends into the canonical events. The benchmark
tag travels in the published payload, JSON ``{"text", "tag", "type"}`` (Socket.IO: the event's object,
with the room), and comes back as ``clientMsgId``; these servers give no message ids, so ``id`` and
``lastMessageId`` are None. The subscription's confirmation (a join ack, a RECEIPT, a SUBACK) becomes
SUBSCRIBED; the server's acknowledgement of a publish (an ack, a RECEIPT, a PUBACK) becomes ``ACKED``.
Replies the protocol owes (Engine.IO's pong, MQTT's PUBACK of a QoS 1 delivery) come back as ``SEND``.

Settings (``--wire-config FILE.toml`` table ``[socketio]``/``[stomp]``/``[mqtt]``, or ``--wire-set``)
are the fields of each ``*Settings`` class, defaults as written there; docs/ADAPTERS.md lists them.
None of these wires has history, read receipts, presence or a last message id.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import orjson

from bench.core import mqtt, protocol, socketio, stomp
from bench.core.exceptions import ProtocolError, UsageError
from bench.loadgen.wirekit import ACKED, ECHO, OPENED, OWN_LOGIN, SEND, STREAM, Credentials, configure, ws_url

JSON_BODY: Final = "application/json"


def chat_message(
    channel: str, body: bytes | dict[str, Any], text_key: str = "text", tag_key: str = "tag"
) -> dict[str, Any]:
    """The canonical CHAT_MESSAGE of a payload that carries the text and the tag (JSON bytes, or decoded)."""
    if isinstance(body, bytes):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ProtocolError(protocol.BAD_JSON, "payload is not the benchmark's JSON") from None
        if not isinstance(body, dict):
            raise ProtocolError(protocol.BAD_MESSAGE, "payload is not a JSON object")
    message = {
        "id": None,
        "channelId": channel,
        "messageType": body.get("type", "TEXT"),
        "content": body.get(text_key),
        "clientMsgId": body.get(tag_key),
    }
    return {"type": protocol.CHAT_MESSAGE, "channelId": channel, "message": message}


def subscribed(channel: str) -> dict[str, Any]:
    """The canonical SUBSCRIBED these protocols can say: no last message id, no server clock."""
    return {"type": protocol.SUBSCRIBED, "channelId": channel, "lastMessageId": None, "timestamp": None}


def error(code: str, reason: str = "") -> dict[str, Any]:
    return {"type": protocol.ERROR, "code": code, "reason": reason}


def payload(content: str, tag: str, message_type: str) -> bytes:
    return orjson.dumps({"text": content, "tag": tag, "type": message_type})


class _Foreign:
    """What the three share: no history, receipts or presence; the publisher gets its own copy."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset({ECHO})
    subprotocols: ClassVar[tuple[str, ...]] = ()
    binary: ClassVar[bool] = False
    default_path: ClassVar[str] = "/ws"

    def read_receipt(self, channel: str, message_id: int, now_ms: int) -> bytes:
        raise UsageError(f"protocol {self.name} has no read receipts")

    def user_status(self, status: str, now_ms: int) -> bytes:
        raise UsageError(f"protocol {self.name} has no presence")


# --- Socket.IO -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SocketIOSettings:
    namespace: str = "/"
    join_event: str = "join"  # emitted with {room_key: channel} and an ack id; the ack is SUBSCRIBED
    publish_event: str = "chat message"  # emitted with {room_key, text_key, tag_key, "type"}
    receive_event: str = "message"  # what the server broadcasts to the room, with {room_key, ...}
    room_key: str = "room"
    text_key: str = "text"
    tag_key: str = "tag"
    publish_ack: bool = True  # ask for an ack of each publish (ACKED)


class SocketIOWire(_Foreign):
    """Socket.IO 5 over Engine.IO 4 (WebSocket transport only): the library's wire, the app's events."""

    name: ClassVar[str] = "socketio"
    default_path: ClassVar[str] = socketio.PATH
    keepalive_s: ClassVar[float | None] = None  # the server pings, the user answers (SEND)

    def __init__(self, settings: Mapping[str, str]) -> None:
        self.settings = configure(SocketIOSettings, settings, self.name)
        self._ack_ids: Iterator[int] = itertools.count(1)
        self._joins: dict[int, str] = {}  # ack id of a join -> its room (ids are unique in the process)

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        return ws_url(target, ws_path, token, socketio.QUERY)

    def opening(self, credentials: Credentials) -> list[bytes]:
        return [socketio.connect(self.settings.namespace)]

    def keepalive(self) -> bytes:
        return b""

    def _emit(self, event: str, data: dict[str, Any], ack_id: int | None) -> bytes:
        return socketio.event(orjson.dumps([event, data]), self.settings.namespace, ack_id)

    def subscribe(self, channel: str, now_ms: int) -> bytes:
        ack_id = next(self._ack_ids)
        self._joins[ack_id] = channel
        return self._emit(self.settings.join_event, {self.settings.room_key: channel}, ack_id)

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes:
        s = self.settings
        data = {s.room_key: channel, s.text_key: content, s.tag_key: tag, "type": message_type}
        return self._emit(s.publish_event, data, next(self._ack_ids) if s.publish_ack else None)

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        try:
            packet = socketio.decode(payload, orjson.loads)
        except (socketio.SocketIOError, ValueError) as exc:
            raise ProtocolError(protocol.BAD_MESSAGE, str(exc)) from None
        if packet.engine != socketio.MESSAGE:
            if packet.engine == socketio.PING:
                return [{"type": SEND, "frame": socketio.PONG_PACKET}]
            return [error("engineio_close")] if packet.engine == socketio.CLOSE else []
        s = self.settings
        if packet.namespace != s.namespace:
            return []
        kind, data = packet.kind, packet.data
        if kind == socketio.EVENT:
            if isinstance(data, list) and len(data) > 1 and data[0] == s.receive_event and isinstance(data[1], dict):
                return [chat_message(str(data[1].get(s.room_key)), data[1], s.text_key, s.tag_key)]
            return [{"type": f"event_{data[0] if isinstance(data, list) and data else '?'}"}]
        if kind == socketio.ACK:
            room = self._joins.pop(packet.ack_id, None) if packet.ack_id is not None else None
            return [subscribed(room) if room is not None else {"type": ACKED}]
        if kind == socketio.CONNECT:
            return [{"type": OPENED}]
        return [error("socketio_connect_error" if kind == socketio.CONNECT_ERROR else "socketio_disconnect")]


# --- STOMP -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StompSettings:
    destination: str = "/topic/{channel}"  # one per channel; RabbitMQ: /topic/<routing key> on amq.topic
    vhost: str = "/"  # CONNECT's host header
    heartbeat_ms: int = 10000  # both ways; 0: none
    receipts: bool = True  # SEND with a receipt header (ACKED)


SUBSCRIPTION_RECEIPT: Final = "sub/"  # receipt id of a SUBSCRIBE: this prefix, then the channel
PUBLISH_RECEIPT: Final = "pub"  # the same for every SEND: the RECEIPTs are then alike and decoded once


class StompWire(_Foreign):
    """STOMP 1.2 over WebSocket; a subscription per channel, its id the channel name."""

    name: ClassVar[str] = "stomp"
    capabilities: ClassVar[frozenset[str]] = frozenset({ECHO, OWN_LOGIN, STREAM})
    subprotocols: ClassVar[tuple[str, ...]] = (stomp.SUBPROTOCOL,)

    def __init__(self, settings: Mapping[str, str]) -> None:
        self.settings = configure(StompSettings, settings, self.name)
        self.keepalive_s = self.settings.heartbeat_ms / 1000 if self.settings.heartbeat_ms > 0 else None

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        return ws_url(target, ws_path, token)

    def opening(self, credentials: Credentials) -> list[bytes]:
        beat = self.settings.heartbeat_ms
        headers = {"accept-version": "1.2", "host": self.settings.vhost, "heart-beat": f"{beat},{beat}"}
        if credentials.user:
            headers |= {"login": credentials.user, "passcode": credentials.password}
        return [stomp.frame("CONNECT", headers)]

    def keepalive(self) -> bytes:
        return stomp.HEARTBEAT

    def subscribe(self, channel: str, now_ms: int) -> bytes:
        destination = self.settings.destination.format(channel=channel)
        headers = {"id": channel, "destination": destination, "ack": "auto", "receipt": SUBSCRIPTION_RECEIPT + channel}
        return stomp.frame("SUBSCRIBE", headers)

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes:
        headers = {"destination": self.settings.destination.format(channel=channel), "content-type": JSON_BODY}
        if self.settings.receipts:
            headers["receipt"] = PUBLISH_RECEIPT
        return stomp.frame("SEND", headers, payload(content, tag, message_type))

    def whole(self, data: bytes) -> int:
        return stomp.whole_length(data)

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        simple = stomp.simple_message(payload)
        if simple is not None:
            return [chat_message(*simple)]
        try:
            frames = stomp.frames(payload)
        except (stomp.StompError, ValueError) as exc:
            raise ProtocolError(protocol.BAD_MESSAGE, str(exc)) from None
        events: list[dict[str, Any]] = []
        for frame in frames:
            headers = frame.headers
            if frame.command == "MESSAGE":
                events.append(chat_message(headers.get("subscription", ""), frame.body))
            elif frame.command == "RECEIPT":
                receipt = headers.get("receipt-id", "")
                channel = receipt[len(SUBSCRIPTION_RECEIPT) :]
                events.append(subscribed(channel) if receipt.startswith(SUBSCRIPTION_RECEIPT) else {"type": ACKED})
            elif frame.command == "CONNECTED":
                events.append({"type": OPENED})
            elif frame.command == "ERROR":
                events.append(error("stomp_error", headers.get("message", "")))
        return events


# --- MQTT ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MqttSettings:
    version: int = mqtt.V311  # 4: MQTT 3.1.1; 5: MQTT 5
    qos: int = 1  # of each publish (1: the PUBACK is ACKED)
    sub_qos: int = 0  # of each subscription (1: every delivery is PUBACKed by the user)
    topic: str = "{channel}"  # one per channel; RabbitMQ maps it to amq.topic (/ becomes .)
    keepalive_s: int = 60  # CONNECT's keep alive; a PINGREQ every half of it


class MqttWire(_Foreign):
    """MQTT 3.1.1 or 5 over WebSocket (binary messages): a topic per channel, clean sessions."""

    name: ClassVar[str] = "mqtt"
    capabilities: ClassVar[frozenset[str]] = frozenset({ECHO, OWN_LOGIN, STREAM})
    subprotocols: ClassVar[tuple[str, ...]] = ("mqtt",)
    binary: ClassVar[bool] = True

    def __init__(self, settings: Mapping[str, str]) -> None:
        s = self.settings = configure(MqttSettings, settings, self.name)
        if s.version not in (mqtt.V311, mqtt.V5) or s.qos not in (0, 1) or s.sub_qos not in (0, 1):
            raise UsageError("protocol mqtt: version is 4 or 5, qos and sub_qos are 0 or 1")
        self.keepalive_s = s.keepalive_s / 2 if s.keepalive_s > 0 else None
        self._prefix, _, self._suffix = s.topic.partition("{channel}")
        self._packet_ids: Iterator[int] = itertools.cycle(range(1, mqtt.MAX_PACKET_ID + 1))
        self._subscribing: dict[int, str] = {}  # packet id of a SUBSCRIBE -> its channel

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        return ws_url(target, ws_path, token)

    def opening(self, credentials: Credentials) -> list[bytes]:
        s = self.settings
        return [
            mqtt.connect(
                credentials.client_id,
                version=s.version,
                username=credentials.user,
                password=credentials.password,
                keepalive_s=s.keepalive_s,
            )
        ]

    def keepalive(self) -> bytes:
        return mqtt.PINGREQ_PACKET

    def subscribe(self, channel: str, now_ms: int) -> bytes:
        packet_id = next(self._packet_ids)
        self._subscribing[packet_id] = channel
        return mqtt.subscribe(
            packet_id, self._prefix + channel + self._suffix, self.settings.sub_qos, version=self.settings.version
        )

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes:
        s = self.settings
        packet_id = next(self._packet_ids) if s.qos else 0
        topic = self._prefix + channel + self._suffix
        return mqtt.publish(
            topic, payload(content, tag, message_type), qos=s.qos, packet_id=packet_id, version=s.version
        )

    def whole(self, data: bytes) -> int:
        try:
            return mqtt.whole_length(data)
        except mqtt.MqttError as exc:
            raise ProtocolError(protocol.BAD_MESSAGE, str(exc)) from None

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        try:
            packets = mqtt.packets(payload, self.settings.version)
        except mqtt.MqttError as exc:
            raise ProtocolError(protocol.BAD_MESSAGE, str(exc)) from None
        events: list[dict[str, Any]] = []
        for packet in packets:
            kind = packet.kind
            if kind == mqtt.PUBLISH:
                topic = packet.topic
                channel = topic[len(self._prefix) : len(topic) - len(self._suffix)]
                events.append(chat_message(channel, packet.payload))
                if packet.qos:
                    events.append({"type": SEND, "frame": mqtt.puback(packet.packet_id)})
            elif kind == mqtt.PUBACK:
                events.append({"type": ACKED})
            elif kind == mqtt.SUBACK:
                channel = self._subscribing.pop(packet.packet_id, "")
                refused = not packet.payload or packet.payload[0] >= mqtt.SUBACK_FAILURE
                events.append(error("mqtt_suback_refused", channel) if refused else subscribed(channel))
            elif kind == mqtt.CONNACK:
                code = packet.payload[:1]
                events.append({"type": OPENED} if code == b"\x00" else error("mqtt_connack_refused", code.hex()))
        return events

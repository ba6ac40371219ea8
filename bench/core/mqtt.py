"""MQTT 3.1.1 and 5 packets, the part a load client needs (OASIS mqtt-v3.1.1 §2-3, mqtt-v5.0 §2-3). Pure.

Encoders for what a client sends (CONNECT, SUBSCRIBE, PUBLISH at QoS 0/1, PUBACK, PINGREQ, DISCONNECT)
and ``packets``, which splits the bytes of one WebSocket message into ``Packet``s. Over WebSocket an
MQTT packet may in principle span messages; the brokers this is used with (RabbitMQ's web_mqtt) send
whole packets, so a partial packet raises ``MqttError`` instead of being kept for the next message.
Version 5 adds a properties block to most packets; no property is sent, and received ones are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

V311: Final = 4  # the protocol level byte of CONNECT
V5: Final = 5

CONNECT: Final = 1
CONNACK: Final = 2
PUBLISH: Final = 3
PUBACK: Final = 4
SUBSCRIBE: Final = 8
SUBACK: Final = 9
PINGREQ: Final = 12
PINGRESP: Final = 13
DISCONNECT: Final = 14

PINGREQ_PACKET: Final = b"\xc0\x00"
MAX_PACKET_ID: Final = 0xFFFF
SUBACK_FAILURE: Final = 0x80  # a SUBACK return code of 0x80 or more refuses the subscription


class MqttError(ValueError):
    """Bytes that are not (whole) MQTT packets."""


@dataclass(slots=True, frozen=True)
class Packet:
    """One received packet: its type, flags, and the fields a client reads of it."""

    kind: int
    flags: int = 0
    packet_id: int = 0
    topic: str = ""
    payload: bytes = b""  # PUBLISH: the application message; CONNACK/SUBACK: the return/reason codes

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 0x03


def varint(n: int) -> bytes:
    """The variable byte integer of §1.5.5 / §2.2.3 (remaining lengths, property lengths)."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return len(data).to_bytes(2) + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def _props(version: int) -> bytes:
    return b"\x00" if version == V5 else b""  # an empty properties block


def connect(
    client_id: str,
    *,
    version: int = V311,
    username: str = "",
    password: str = "",
    keepalive_s: int = 60,
    clean: bool = True,
) -> bytes:
    """CONNECT with a clean session (clean start) unless told otherwise."""
    flags = (0x80 if username else 0) | (0x40 if password else 0) | (0x02 if clean else 0)
    body = _string("MQTT") + bytes((version, flags)) + keepalive_s.to_bytes(2) + _props(version) + _string(client_id)
    if username:
        body += _string(username)
    if password:
        body += _string(password)
    return _packet(CONNECT << 4, body)


def subscribe(packet_id: int, topic: str, qos: int, *, version: int = V311) -> bytes:
    """SUBSCRIBE to one topic filter at ``qos`` (v5: the other subscription options off)."""
    body = packet_id.to_bytes(2) + _props(version) + _string(topic) + bytes((qos,))
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def publish(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0, version: int = V311) -> bytes:
    """PUBLISH at QoS 0 (no packet id) or 1."""
    head = _string(topic) + (packet_id.to_bytes(2) if qos else b"") + _props(version)
    return _packet(PUBLISH << 4 | qos << 1, head + payload)


def puback(packet_id: int) -> bytes:
    """PUBACK for a QoS 1 PUBLISH (v5 allows omitting the reason code and properties: success)."""
    return b"\x40\x02" + packet_id.to_bytes(2)


def disconnect() -> bytes:
    return b"\xe0\x00"


def _remaining_length(data: bytes, pos: int) -> tuple[int, int] | None:
    """The remaining length that starts at ``pos`` and where the packet's rest starts; None when the
    data ends inside it; MqttError when it is longer than the four bytes allowed."""
    length = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            return None
        if shift > 21:
            raise MqttError("malformed remaining length")
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return length, pos


def whole_length(data: bytes) -> int:
    """How many leading bytes of ``data`` are whole packets (MQTT over WebSocket: "the receiver MUST NOT
    assume that MQTT Control Packets are aligned on WebSocket frame boundaries"); MqttError when a
    remaining length is malformed."""
    pos, end = 0, len(data)
    while pos < end:
        header = _remaining_length(data, pos + 1)
        if header is None or header[1] + header[0] > end:
            return pos
        pos = header[1] + header[0]
    return end


def packets(data: bytes, version: int = V311) -> list[Packet]:
    """The packets of one WebSocket message; MqttError when it is not whole packets."""
    out: list[Packet] = []
    pos, end = 0, len(data)
    while pos < end:
        first = data[pos]
        header = _remaining_length(data, pos + 1)
        if header is None:
            raise MqttError("truncated remaining length")
        length, pos = header
        stop = pos + length
        if stop > end:
            raise MqttError(f"packet of {length} bytes, {end - pos} in the message")
        out.append(_parse(first >> 4, first & 0x0F, data, pos, stop, version))
        pos = stop
    return out


def _skip_props(data: bytes, pos: int) -> int:
    length = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return pos + length


def _parse(kind: int, flags: int, data: bytes, pos: int, stop: int, version: int) -> Packet:
    try:
        if kind == PUBLISH:
            topic_end = pos + 2 + int.from_bytes(data[pos : pos + 2])
            topic = data[pos + 2 : topic_end].decode()
            packet_id = 0
            if flags & 0x06:
                packet_id = int.from_bytes(data[topic_end : topic_end + 2])
                topic_end += 2
            if version == V5:
                topic_end = _skip_props(data, topic_end)
            return Packet(kind, flags, packet_id, topic, data[topic_end:stop])
        if kind in (PUBACK, SUBACK):
            packet_id = int.from_bytes(data[pos : pos + 2])
            codes = pos + 2
            if version == V5 and kind == SUBACK:
                codes = _skip_props(data, codes)
            return Packet(kind, flags, packet_id, payload=data[codes:stop])
        if kind == CONNACK:  # session present, then the return (v3.1.1) or reason (v5) code
            return Packet(kind, flags, payload=data[pos + 1 : pos + 2])
        return Packet(kind, flags, payload=data[pos:stop])
    except (IndexError, UnicodeDecodeError) as exc:
        raise MqttError(f"malformed packet of type {kind}: {exc}") from None

"""The pure codecs of the foreign wires: MQTT, STOMP, Engine.IO/Socket.IO packets, against the specs' bytes."""

from __future__ import annotations

import json

import pytest

from bench.core import mqtt, socketio, stomp

# --- MQTT ------------------------------------------------------------------------------------------------------


def test_mqtt_connect_311_is_the_specs_layout() -> None:
    packet = mqtt.connect("c1", username="guest", password="pw", keepalive_s=30)
    body = b"\x00\x04MQTT\x04\xc2\x00\x1e" + b"\x00\x02c1" + b"\x00\x05guest" + b"\x00\x02pw"
    assert packet == b"\x10" + bytes((len(body),)) + body


def test_mqtt_5_adds_empty_properties() -> None:
    assert mqtt.connect("c", version=mqtt.V5)[2:13] == b"\x00\x04MQTT\x05\x02\x00\x3c\x00"
    assert mqtt.subscribe(7, "t", 1, version=mqtt.V5) == b"\x82\x07\x00\x07\x00\x00\x01t\x01"
    assert mqtt.publish("t", b"x", qos=1, packet_id=3, version=mqtt.V5) == b"\x32\x07\x00\x01t\x00\x03\x00x"


def test_mqtt_remaining_length_is_a_varint() -> None:
    assert mqtt.varint(0) == b"\x00" and mqtt.varint(127) == b"\x7f"
    assert mqtt.varint(128) == b"\x80\x01" and mqtt.varint(16383) == b"\xff\x7f"
    big = mqtt.publish("topic", b"y" * 20000)
    [packet] = mqtt.packets(big)
    assert packet.kind == mqtt.PUBLISH and packet.topic == "topic" and packet.payload == b"y" * 20000


@pytest.mark.parametrize("version", [mqtt.V311, mqtt.V5])
def test_mqtt_packets_of_one_message(version: int) -> None:
    suback = b"\x90\x03\x00\x05\x00" if version == mqtt.V311 else b"\x90\x04\x00\x05\x00\x00"  # v5: properties
    publish = mqtt.publish("a/b", b'{"k":1}', qos=1, packet_id=9, version=version)
    data = publish + suback + mqtt.puback(9) + b"\x20\x02\x00\x00" + b"\xd0\x00"
    received, subacked, pubacked, connack, pingresp = mqtt.packets(data, version)
    assert (received.topic, received.packet_id, received.qos, received.payload) == ("a/b", 9, 1, b'{"k":1}')
    assert (subacked.kind, subacked.packet_id, subacked.payload) == (mqtt.SUBACK, 5, b"\x00")
    assert (pubacked.kind, pubacked.packet_id) == (mqtt.PUBACK, 9)
    assert (connack.kind, connack.payload) == (mqtt.CONNACK, b"\x00")
    assert pingresp.kind == mqtt.PINGRESP


def test_mqtt_partial_packets_are_errors() -> None:
    with pytest.raises(mqtt.MqttError):
        mqtt.packets(mqtt.publish("t", b"abc")[:-1])
    with pytest.raises(mqtt.MqttError):
        mqtt.packets(b"\x30\xff")


def test_mqtt_whole_length_is_the_last_packet_boundary_in_reach() -> None:
    parts = [mqtt.publish("t", b"a" * 300), mqtt.PINGREQ_PACKET, mqtt.publish("topic", b"b" * 5)]
    stream = b"".join(parts)
    boundaries = [sum(len(part) for part in parts[:n]) for n in range(len(parts) + 1)]
    for end in range(len(stream) + 1):  # every cut, those inside a remaining length too
        assert mqtt.whole_length(stream[:end]) == max(b for b in boundaries if b <= end)
    with pytest.raises(mqtt.MqttError):
        mqtt.whole_length(b"\x30\xff\xff\xff\xff\x01")


# --- STOMP -----------------------------------------------------------------------------------------------------


def test_stomp_frames_round_trip_with_escapes() -> None:
    data = stomp.frame("SEND", {"destination": "/topic/a", "note": "a:b\nc"}, b'{"x":1}')
    assert data.startswith(b"SEND\ndestination:/topic/a\nnote:a\\cb\\nc\ncontent-length:7\n\n")
    [frame] = stomp.frames(data)
    assert frame == stomp.Frame(
        "SEND", {"destination": "/topic/a", "note": "a:b\nc", "content-length": "7"}, b'{"x":1}'
    )


def test_stomp_connect_is_not_escaped_and_heartbeats_are_skipped() -> None:
    assert stomp.frame("CONNECT", {"host": "/", "login": "a:b"}) == b"CONNECT\nhost:/\nlogin:a:b\n\n\x00"
    message = b"\n" + stomp.frame("RECEIPT", {"receipt-id": "x"}) + b"\n\r\nMESSAGE\r\nsubscription:s\r\n\r\nbody\x00\n"
    receipt, msg = stomp.frames(message)
    assert receipt.headers == {"receipt-id": "x"} and msg.command == "MESSAGE" and msg.body == b"body"
    assert stomp.frames(b"\n") == []


def test_stomp_simple_message_is_the_fast_path_of_frames() -> None:
    message = stomp.frame("MESSAGE", {"destination": "/topic/a", "subscription": "a", "message-id": "1"}, b'{"x":1}')
    assert stomp.simple_message(message) == ("a", b'{"x":1}')
    [frame] = stomp.frames(message)
    assert (frame.headers["subscription"], frame.body) == ("a", b'{"x":1}')
    assert stomp.simple_message(message + b"\n") == stomp.simple_message(message + b"\r\n\n") == ("a", b'{"x":1}')
    for other in (
        message + message,  # two frames
        message + b"\nx",  # more than EOLs after the NUL
        b"MESSAGE\nsubscription:a\ncontent-length:3\n\na\x00b\x00",  # a NUL in the body
        stomp.frame("MESSAGE", {"subscription": "a:b"}, b"x"),  # an escaped header
        stomp.frame("RECEIPT", {"receipt-id": "1"}),
        message.replace(b"\n", b"\r\n"),
    ):
        assert stomp.simple_message(other) is None


def test_stomp_body_may_hold_nul_when_content_length_says_so() -> None:
    [frame] = stomp.frames(b"MESSAGE\ncontent-length:3\n\na\x00b\x00")
    assert frame.body == b"a\x00b"


def test_stomp_whole_length_is_the_last_frame_boundary_in_reach() -> None:
    parts = [
        b"\n",  # a heart-beat
        stomp.frame("MESSAGE", {"subscription": "a"}, b'{"x":1}') + b"\r\n",
        b"MESSAGE\r\ncontent-length:3\r\n\r\na\x00b\x00",  # CRLF lines, a NUL in the body
        stomp.frame("RECEIPT", {"receipt-id": "pub"}),
        b"MESSAGE\nsubscription:b\n\nno content-length\x00",
    ]
    stream = b"".join(parts)
    frame_ends = [sum(map(len, parts[:n])) + len(parts[n].rstrip(b"\r\n")) for n in range(1, len(parts))]
    for end in range(len(stream) + 1):  # every cut: in a head, in a body, between a NUL and its EOLs
        whole = stomp.whole_length(stream[:end])
        assert len(stomp.frames(stream[:whole])) == sum(1 for e in frame_ends if e <= end)
        if whole < end:  # what is left is one cut frame
            assert stream[whole] not in b"\r\n"
            with pytest.raises(stomp.StompError):
                stomp.frames(stream[whole:end])


@pytest.mark.parametrize("bad", [b"MESSAGE\nx:y\n\nbody", b"MESSAGE\nnocolon\n\n\x00", b"MESSAGE\nx:\\q\n\n\x00"])
def test_stomp_malformed_frames_are_errors(bad: bytes) -> None:
    with pytest.raises(stomp.StompError):
        stomp.frames(bad)


# --- Engine.IO / Socket.IO -------------------------------------------------------------------------------------


def test_socketio_encoders() -> None:
    assert socketio.connect() == b"40"
    assert socketio.connect("/chat") == b"40/chat,"
    assert socketio.event(b'["join",{"room":"r"}]', ack_id=12) == b'4212["join",{"room":"r"}]'
    assert socketio.event(b'["e"]', "/chat", 3) == b'42/chat,3["e"]'


def test_socketio_decoder() -> None:
    loads = json.loads
    opened = socketio.decode(b'0{"sid":"x","pingInterval":25000}', loads)
    assert opened.engine == socketio.OPEN and opened.data["pingInterval"] == 25000
    assert socketio.decode(b"2", loads).engine == socketio.PING
    event = socketio.decode(b'42["message",{"room":"r","n":1}]', loads)
    assert (event.kind, event.namespace, event.ack_id, event.data) == (
        socketio.EVENT,
        "/",
        None,
        ["message", {"room": "r", "n": 1}],
    )
    ack = socketio.decode(b'43/chat,17[{"room":"r"}]', loads)
    assert (ack.kind, ack.namespace, ack.ack_id, ack.data) == (socketio.ACK, "/chat", 17, [{"room": "r"}])
    assert socketio.decode(b'40{"sid":"s"}', loads).kind == socketio.CONNECT
    for bad in (b"", b"9", b"4", b"45[]", b"42/chat", b"42[nope"):
        with pytest.raises((socketio.SocketIOError, ValueError)):
            socketio.decode(bad, loads)

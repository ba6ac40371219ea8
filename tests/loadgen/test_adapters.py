"""The socketio, stomp and mqtt wires without a server: their frames, and what they decode into."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench.core import mqtt, protocol, stomp
from bench.core.exceptions import ProtocolError, UsageError
from bench.loadgen import wire
from bench.loadgen.adapters import MqttWire, SocketIOWire, StompWire
from bench.loadgen.wirekit import ACKED, OPENED, SEND, Credentials, read_settings
from tests.utils import REPO, TIMEOUT

TAG = protocol.format_tag("u0-p0.1/bench-0", 1, 1_000_000, 1_000_100)
LOGIN = Credentials("u0-p0.1", "guest", "secret")


def only_message(events: list[dict[str, object]]) -> dict[str, object]:
    [event] = events
    assert event["type"] == protocol.CHAT_MESSAGE and event["channelId"] == "bench-0"
    message = event["message"]
    assert isinstance(message, dict) and message["id"] is None and message["clientMsgId"] == TAG
    return message


def test_the_table_and_the_chat_wire_are_unchanged() -> None:
    assert sorted(wire.WIRES) == ["chat", "mqtt", "socketio", "stomp"]
    chat = wire.wire_for("chat")
    assert chat.subprotocols == (protocol.BATCH_SUBPROTOCOL,) and not chat.binary and chat.opening(LOGIN) == []
    with pytest.raises(UsageError, match="no settings"):
        wire.wire_for("chat", {"x": "1"})


def test_socketio_join_publish_receive_and_acks() -> None:
    sio = SocketIOWire({})
    assert sio.url("http://h:1", "/socket.io/", None) == "ws://h:1/socket.io/?EIO=4&transport=websocket"
    assert sio.opening(LOGIN) == [b"40"]
    join = sio.subscribe("bench-0", 0)
    ack_id = int(join[2 : join.index(b"[")])
    assert orjson.loads(join[join.index(b"[") :]) == ["join", {"room": "bench-0"}]
    sent = sio.publish("bench-0", "hi", 0, TAG, "TEXT")
    assert orjson.loads(sent[sent.index(b"[") :])[0] == "chat message"
    assert sio.decode(f"43{ack_id}".encode() + b'[{"room":"bench-0"}]')[0] == {
        "type": protocol.SUBSCRIBED, "channelId": "bench-0", "lastMessageId": None, "timestamp": None,
    }  # fmt: skip
    assert sio.decode(b"4399[{}]") == [{"type": ACKED}]
    broadcast = b'42["message",' + orjson.dumps({"room": "bench-0", "text": "hi", "tag": TAG}) + b"]"
    assert only_message(sio.decode(broadcast))["content"] == "hi"
    assert sio.decode(b"2") == [{"type": SEND, "frame": b"3"}]
    assert sio.decode(b'40{"sid":"s"}') == [{"type": OPENED}]
    assert sio.decode(b'42["typing",{}]') == [{"type": "event_typing"}]
    with pytest.raises(ProtocolError):
        sio.decode(b"42[broken")


def test_socketio_settings_rename_events_and_keys() -> None:
    sio = SocketIOWire({"publish_event": "say", "receive_event": "said", "room_key": "channel", "namespace": "/c"})
    assert sio.opening(LOGIN) == [b"40/c,"]
    sent = sio.publish("bench-0", "hi", 0, TAG, "TEXT")
    assert sent.startswith(b"42/c,") and b'"say"' in sent and b'"channel":"bench-0"' in sent
    said = b'42/c,["said",' + orjson.dumps({"channel": "bench-0", "text": "x", "tag": TAG}) + b"]"
    only_message(sio.decode(said))
    assert sio.decode(b'42["said",{}]') == []  # another namespace


def test_stomp_connect_subscribe_send_and_what_comes_back() -> None:
    st = StompWire({"heartbeat_ms": "5000"})
    assert st.subprotocols == ("v12.stomp",) and st.keepalive_s == 5.0 and st.keepalive() == b"\n"
    [connect] = st.opening(LOGIN)
    assert stomp.frames(connect)[0].headers == {
        "accept-version": "1.2", "host": "/", "heart-beat": "5000,5000", "login": "guest", "passcode": "secret",
    }  # fmt: skip
    [sub] = stomp.frames(st.subscribe("bench-0", 0))
    assert sub.headers["destination"] == "/topic/bench-0" and sub.headers["id"] == "bench-0"
    [send] = stomp.frames(st.publish("bench-0", "hi", 0, TAG, "TEXT"))
    assert send.headers["receipt"] == "pub" and orjson.loads(send.body)["tag"] == TAG
    receipt = stomp.frame("RECEIPT", {"receipt-id": sub.headers["receipt"]})
    assert st.decode(b"\n" + receipt + stomp.frame("RECEIPT", {"receipt-id": "pub"})) == [
        {"type": protocol.SUBSCRIBED, "channelId": "bench-0", "lastMessageId": None, "timestamp": None},
        {"type": ACKED},
    ]
    message = stomp.frame("MESSAGE", {"subscription": "bench-0", "destination": "/topic/bench-0"}, send.body)
    assert only_message(st.decode(message))["content"] == "hi"
    assert st.decode(b"CONNECTED\nversion:1.2\n\n\x00") == [{"type": OPENED}]
    assert st.decode(stomp.frame("ERROR", {"message": "bad login"}))[0]["code"] == "stomp_error"
    assert StompWire({"heartbeat_ms": "0"}).keepalive_s is None


@pytest.mark.parametrize("version", [mqtt.V311, mqtt.V5])
def test_mqtt_connect_subscribe_publish_and_what_comes_back(version: int) -> None:
    mq = MqttWire({"version": str(version), "topic": "chat/{channel}/in"})
    assert mq.binary and mq.subprotocols == ("mqtt",) and mq.keepalive_s == 30.0
    [connect] = mq.opening(LOGIN)
    assert connect == mqtt.connect("u0-p0.1", version=version, username="guest", password="secret")
    sub = mq.subscribe("bench-0", 0)
    packet_id = int.from_bytes(sub[2:4])
    assert b"chat/bench-0/in" in sub
    suback = b"\x90\x03" + packet_id.to_bytes(2) + b"\x00" if version == mqtt.V311 else None
    if suback is None:
        suback = b"\x90\x04" + packet_id.to_bytes(2) + b"\x00\x00"
    assert mq.decode(suback)[0]["type"] == protocol.SUBSCRIBED
    sent = mq.publish("bench-0", "hi", 0, TAG, "TEXT")
    [published] = mqtt.packets(sent, version)
    assert published.qos == 1 and published.topic == "chat/bench-0/in"
    assert only_message(mq.decode(mqtt.publish("chat/bench-0/in", published.payload, version=version)))
    delivered_qos1 = mq.decode(mqtt.publish("chat/bench-0/in", published.payload, qos=1, packet_id=77, version=version))
    assert delivered_qos1[1] == {"type": SEND, "frame": mqtt.puback(77)}
    assert mq.decode(mqtt.puback(published.packet_id)) == [{"type": ACKED}]
    assert mq.decode(b"\x20\x02\x00\x00") == [{"type": OPENED}]
    assert mq.decode(b"\x20\x02\x00\x05")[0]["code"] == "mqtt_connack_refused"


def test_settings_are_typed_and_checked(tmp_path: Path) -> None:
    config = tmp_path / "wire.toml"
    config.write_text('[stomp]\ndestination = "/exchange/chat/{channel}"\nreceipts = false\n')
    settings = read_settings(str(config), "stomp", "heartbeat-ms=0")
    assert settings == {"destination": "/exchange/chat/{channel}", "receipts": "false", "heartbeat_ms": "0"}
    st = StompWire(settings)
    assert (
        st.settings.receipts is False and "receipt" not in stomp.frames(st.publish("c", "x", 0, TAG, "TEXT"))[0].headers
    )
    with pytest.raises(UsageError, match="unknown setting"):
        MqttWire({"qos2": "1"})
    with pytest.raises(UsageError, match="not a int"):
        MqttWire({"qos": "high"})
    with pytest.raises(UsageError, match="qos"):
        MqttWire({"qos": "2"})


def test_a_scenario_the_protocol_cannot_run_exits_2() -> None:
    with pytest.raises(UsageError, match="history"):
        wire.require(wire.wire_for("stomp"), frozenset({wire.HISTORY}), "infinite_scroll")
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(REPO / "scenarios" / "infinite_scroll.py"), "--headless",
         "-u", "1", "-t", "1s", "--host", "http://127.0.0.1:9", "--protocol", "stomp"],
        capture_output=True, text=True, timeout=12 * TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "infinite_scroll needs catch_up, history, which protocol 'stomp' does not offer" in proc.stderr

"""The pure protocol module: bytes in, typed objects out."""

from __future__ import annotations

import json

import pytest

from bench.core import protocol as p
from bench.core.exceptions import ProtocolError


def test_decode_frame_accepts_an_object_and_a_batched_array() -> None:
    one = p.decode_frame(b'{"type":"CHAT_MESSAGE","channelId":"c"}')
    many = p.decode_frame(json.dumps([{"type": "A"}, {"type": "B"}]))
    assert [m["type"] for m in one] == ["CHAT_MESSAGE"]
    assert [m["type"] for m in many] == ["A", "B"]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"{nope", p.BAD_JSON),
        (b"[1, 2]", p.BAD_MESSAGE),
        (b'"text"', p.BAD_MESSAGE),
    ],
)
def test_decode_frame_rejects_what_is_not_messages(frame: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        p.decode_frame(frame)
    assert info.value.code == code


def test_parse_publish() -> None:
    frame = json.dumps(p.publish("room", "hi", 1700000000000, "u1:1:2:3", "IMAGE"))
    msg = p.parse_client_message(frame)
    assert msg == p.Publish("room", "IMAGE", "hi", 1700000000000, "u1:1:2:3")


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        ({"type": "SUBSCRIBE"}, p.MISSING_FIELD),
        ({"channelId": "c"}, p.MISSING_FIELD),
        ({"type": "DANCE"}, p.UNKNOWN_TYPE),
        ({"type": "PUBLISH", "channelId": "c"}, p.MISSING_FIELD),
        ({"type": "PUBLISH", "channelId": "c", "content": 5}, p.BAD_MESSAGE),
        ({"type": "PUBLISH", "channelId": "c", "content": "x", "messageType": "VIDEO"}, p.BAD_MESSAGE),
        ({"type": "USER_STATUS", "status": "SLEEPING"}, p.BAD_MESSAGE),
        ({"type": "SUBSCRIBE", "channelId": ""}, p.BAD_MESSAGE),
        ({"type": "SUBSCRIBE", "channelId": True}, p.BAD_MESSAGE),
        ([1], p.BAD_MESSAGE),
    ],
)
def test_parse_refuses_bad_messages_with_a_code(obj: object, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        p.parse_client_message(json.dumps(obj))
    assert info.value.code == code


def test_every_client_type_parses() -> None:
    assert p.parse_client_message(json.dumps(p.subscribe("c", 1))) == p.Subscribe("c")
    assert p.parse_client_message(json.dumps(p.unsubscribe("c", 1))) == p.Unsubscribe("c")
    assert p.parse_client_message(json.dumps(p.read_receipt("c", 5, 1))) == p.ReadReceipt("c", 5)
    assert p.parse_client_message(json.dumps(p.user_status("AWAY", 1))) == p.UserStatus("AWAY")


def test_bench_tag_round_trip_and_foreign_ids() -> None:
    tag = p.format_tag("pub:7", 42, 1_700_000_000_000_000, 1_700_000_000_000_123)
    parsed = p.parse_tag(tag)
    assert parsed == p.BenchTag("pub:7", 42, 1_700_000_000_000_000, 1_700_000_000_000_123)
    assert parsed is not None and parsed.encode() == tag
    assert p.parse_tag("a-uuid-from-a-browser") is None
    assert p.parse_tag(None) is None
    assert p.parse_tag("x:y:z:w") is None


@pytest.mark.parametrize("foreign", ["a:b:c:d", "urn:uuid:1:x", "1:2:3", "", 7, None, "p:1:2:3.5"])
def test_split_tag_gives_none_for_ids_other_clients_chose(foreign: object) -> None:
    assert p.split_tag(foreign) is None


def test_split_tag_keeps_colons_in_the_publisher() -> None:
    assert p.split_tag("load/0:chan:1:5:6:7") == ("load/0:chan:1", 5, 6, 7)

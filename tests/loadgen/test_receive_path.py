"""The receive hot path (``ChatUser._on_frames``): whole frames counted exactly as one message at a time."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from bench.core import protocol, stomp
from bench.core.exceptions import ProtocolError
from bench.loadgen.adapters import MqttWire, StompWire
from bench.loadgen.metrics import Recorder
from bench.loadgen.user import ChannelState, ChatUser, RecentFrames, RecentTags
from bench.loadgen.wire import ChatWire, Wire, stream_of

RECEIVED_US = 1_800_000_000_000_000
OWN = "me.1/c"  # this user's publisher tag on channel c


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read arrives at RECEIVED_US, so that latencies are exact."""
    monkeypatch.setattr("bench.loadgen.user.time.time_ns", lambda: RECEIVED_US * 1000)


def receiver(
    recorder: Recorder, channels: tuple[str, ...] = ("c", "d"), pending: str = "e", wire: Wire | None = None
) -> ChatUser:
    """A ChatUser with what its receive path reads, without Locust or a connection."""
    user = ChatUser.__new__(ChatUser)
    user.recorder, user.sync_clock, user.unacked, user.wire = recorder, False, {}, wire or ChatWire()
    user.stream, user.carry = stream_of(user.wire), b""
    user.channels = {}
    for name in channels:
        state = user.channels[name] = ChannelState(name)
        state.window, state.last_id = recorder.open_window(name, 0), 0
    user.channels[pending] = ChannelState(pending)  # subscribing: no SUBSCRIBED yet
    return user


def chat(channel: str, message_id: int, publisher: str, seq: int) -> dict[str, Any]:
    intended = RECEIVED_US - 1000 * message_id
    tag = protocol.format_tag(publisher, seq, intended, intended + 7)
    return protocol.chat_message(channel, {"id": message_id, "channelId": channel, "clientMsgId": tag}, 0)


def figures(user: ChatUser) -> dict[str, Any]:
    recorder = user.recorder
    hists = recorder.current
    return {
        "delivered": recorder.delivered,
        "windows": {name: state.window.report() for name, state in user.channels.items() if state.window},
        "last_id": {name: state.last_id for name, state in user.channels.items()},
        "latency": {name: (h.count, h.min, h.max) for name, h in hists.items() if h.count},
        "slowest": recorder.slowest.settle(float("inf")),
        "unacked": user.unacked,
        "acked": dict(recorder._acked),
    }


def test_a_frame_with_reordered_duplicate_own_and_foreign_messages_counts_each_case() -> None:
    user = receiver(Recorder())
    user.unacked[(OWN, 1)] = ("c", None)
    frame = [
        chat("c", 1, "p", 1),
        chat("c", 2, "p", 3),  # p's 2 is late
        chat("c", 3, "p", 2),  # reordered
        chat("c", 4, "p", 2),  # duplicate
        chat("c", 5, OWN, 1),  # own echo: acknowledged and delivered
        chat("d", 6, "p", 1),  # another channel in the same frame
        chat("x", 7, "p", 1),  # not subscribed
        protocol.chat_message("c", {"id": 8, "channelId": "c", "clientMsgId": "not-a-tag"}, 0),
        protocol.subscribed("e", 8, [], 0),  # opens e's window before its next message
        chat("e", 9, "p", 1),
    ]
    user._on_frames([orjson.dumps(frame)], None)
    got = figures(user)
    assert got["delivered"] == 6
    c, d, e = got["windows"]["c"], got["windows"]["d"], got["windows"]["e"]
    assert (c["delivered"], c["reordered"], c["duplicated"], c["gaps"]) == (4, 1, 1, 0)
    assert (d["delivered"], e["delivered"], e["start_id"]) == (1, 1, 8)
    assert got["last_id"] == {"c": 8, "d": 6, "e": 9}
    assert got["latency"]["fanout"] == (6, 1000, 9000)  # received - intended
    assert got["latency"]["fanout_uncorrected"] == (6, 993, 8993)  # received - sent
    assert got["latency"]["publish_rtt"][0] == 1
    assert not got["unacked"] and got["acked"] == {"c": [5]}


def test_catch_up_overlap_in_a_live_frame_is_recovered_not_timed() -> None:
    user = receiver(Recorder())
    user._on_frames([orjson.dumps([chat("c", 1, "p", 1), chat("c", 3, "p", 3)])], None)
    user._on_messages([chat("c", 2, "p", 2)], 0, [], [], protocol.split_tag, live=False)  # a catch-up page
    user.channels["c"].catchup_until = 3
    user._on_frames([orjson.dumps([chat("c", 3, "p", 3), chat("c", 4, "p", 4)])], None)
    got = figures(user)
    assert got["windows"]["c"] | {"channel": None} == {
        "channel": None,
        "method": "server_ids",
        "start_id": 0,
        "end_id": None,
        "delivered": 4,
        "duplicated": 0,
        "reordered": 0,
        "recovered": 1,
        "gaps": 0,
    }
    assert got["latency"]["fanout"][0] == 3


def test_random_batched_frames_give_the_figures_of_one_message_per_frame() -> None:
    rng = random.Random(3)
    messages = []
    seqs: dict[tuple[str, str], int] = {}
    for message_id in range(1, 400):
        channel, publisher = rng.choice("cd"), rng.choice(["p", "q", OWN])
        seq = seqs[channel, publisher] = seqs.get((channel, publisher), 0) + 1
        messages.append(chat(channel, message_id, publisher, seq))
    for _ in range(60):  # late arrivals and repeats
        i, j = rng.randrange(len(messages)), rng.randrange(len(messages))
        messages[i], messages[j] = messages[j], messages[i]
        messages.insert(rng.randrange(len(messages)), messages[rng.randrange(len(messages))])
    framed, single = receiver(Recorder()), receiver(Recorder())
    for user in (framed, single):
        user.unacked.update({(OWN, seq): ("c", None) for seq in range(1, seqs.get(("c", OWN), 0) + 1)})
    while messages:
        size = rng.randint(1, 15)
        frame, messages = messages[:size], messages[size:]
        framed._on_frames([orjson.dumps(frame)], None)
        for message in frame:
            single._on_frames([orjson.dumps(message)], None)
    framed_figures, single_figures = figures(framed), figures(single)
    assert framed_figures == single_figures
    assert framed_figures["windows"]["c"]["duplicated"] > 0 and framed_figures["windows"]["c"]["reordered"] > 0


def mqtt_delivery(wire: Wire, channel: str, content: str, tag: str) -> bytes:
    return wire.publish(channel, content, 0, tag, "TEXT")  # a PUBLISH is delivered as it was sent


def stomp_delivery(wire: Wire, channel: str, content: str, tag: str) -> bytes:
    [send] = stomp.frames(wire.publish(channel, content, 0, tag, "TEXT"))
    headers = {"subscription": channel, "destination": f"/topic/{channel}", "message-id": tag}
    return stomp.frame("MESSAGE", headers, send.body) + b"\n"  # with an EOL after the NUL, as brokers may


@pytest.mark.parametrize(
    ("wire", "delivery"),
    [(MqttWire({"qos": "0"}), mqtt_delivery), (StompWire({}), stomp_delivery)],
    ids=["mqtt", "stomp"],
)
def test_packets_cut_anywhere_across_websocket_messages_count_as_whole_ones(wire: Wire, delivery: Any) -> None:
    """MQTT and STOMP over WebSocket do not align packets with messages: the user carries a cut one over."""
    rng = random.Random(5)
    packets = []
    for seq in range(1, 200):
        intended = RECEIVED_US - 1000 * seq
        tag = protocol.format_tag("p", seq, intended, intended + 7)
        packets.append(delivery(wire, rng.choice("cd"), "x" * rng.choice((1, 200, 20_000)), tag))
    whole, cut = receiver(Recorder(), wire=wire), receiver(Recorder(), wire=wire)
    for packet in packets:
        whole._on_frames([packet], None)
    stream = b"".join(packets)
    while stream:
        size = rng.choice((1, 2, 3, rng.randint(1, 50_000)))
        cut._on_frames([stream[:size]], None)
        stream = stream[size:]
    assert cut.carry == b"" and not cut.recorder.errors
    assert figures(cut) == figures(whole) and whole.recorder.delivered == len(packets)


def test_receivers_of_one_broadcast_frame_count_it_each() -> None:
    recorder = Recorder()
    users = [receiver(recorder) for _ in range(3)]
    frame = orjson.dumps([chat("c", 1, "p", 1), chat("c", 2, "p", 2)])
    for user in users:
        user._on_frames([bytes(bytearray(frame))], None)  # each socket reads its own copy of the bytes
    assert recorder.delivered == 6
    assert [user.channels["c"].window.delivered for user in users if user.channels["c"].window] == [2, 2, 2]
    assert recorder.slowest.settle(float("inf")) == [
        (protocol.format_tag("p", 1, RECEIVED_US - 1000, RECEIVED_US - 993), RECEIVED_US - 1000, 1000),
        (protocol.format_tag("p", 2, RECEIVED_US - 2000, RECEIVED_US - 1993), RECEIVED_US - 2000, 2000),
    ]


def test_recent_frames_decodes_identical_bytes_once_and_keeps_a_bounded_few() -> None:
    recent = RecentFrames()
    first, shared = recent.decode(b'[{"type":"A"}]', protocol.decode_frame)
    assert not shared
    assert recent.decode(bytes(bytearray(b'[{"type":"A"}]')), protocol.decode_frame) == (first, True)
    assert recent.decode(b'[{"type":"A"}]', protocol.decode_frame)[0] is first
    assert recent.decode(b'{"type":"B"}', protocol.decode_frame) == ([{"type": "B"}], False)
    with pytest.raises(ProtocolError):
        recent.decode(b"[1]", protocol.decode_frame)
    for n in range(RecentFrames.KEPT):
        recent.decode(orjson.dumps({"n": n}), protocol.decode_frame)
    assert recent.decode(b'[{"type":"A"}]', protocol.decode_frame)[1] is False  # the oldest went
    large = orjson.dumps({"x": "y" * RecentFrames.LARGEST})
    assert recent.decode(large, protocol.decode_frame)[1] is recent.decode(large, protocol.decode_frame)[1] is False


def test_recent_tags_split_as_split_tag() -> None:
    recent = RecentTags()
    for tag in ["p:1:2:3", "p:1:2:3", "a:b:1:2:3", "not-a-tag", "p:x:2:3", 5, ["p:1:2:3"], None]:
        assert recent.split(tag) == protocol.split_tag(tag)

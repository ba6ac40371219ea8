"""The lean server-frame reader against frames serialized by websockets, fed whole and byte by byte."""

from __future__ import annotations

import pytest
from websockets.frames import Close, Frame, Opcode

from bench.core.frames import NO_STATUS, FrameError, ServerFrames


def frame(opcode: Opcode, data: bytes, *, fin: bool = True, mask: bool = False) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=mask)


STREAM = b"".join(
    [
        frame(Opcode.TEXT, b'{"n":1}'),
        frame(Opcode.TEXT, b"x" * 300),  # 16-bit length
        frame(Opcode.BINARY, b"y" * 70000),  # 64-bit length
        frame(Opcode.TEXT, b'{"n":', fin=False),
        frame(Opcode.PING, b"hello"),  # control frames may come between fragments
        frame(Opcode.CONT, b" 2", fin=False),
        frame(Opcode.CONT, b"}"),
        frame(Opcode.PONG, b""),
        frame(Opcode.CLOSE, Close(1012, "restart").serialize()),
        frame(Opcode.TEXT, b"after the close"),
    ]
)
MESSAGES = [b'{"n":1}', b"x" * 300, b"y" * 70000, b'{"n": 2}']


def test_whole_stream() -> None:
    frames = ServerFrames(1 << 20)
    assert frames.feed(STREAM) == MESSAGES
    assert frames.take_pings() == [b"hello"] and frames.pings == []
    assert frames.close == (1012, "restart")


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_stream_in_pieces(size: int) -> None:
    frames = ServerFrames(1 << 20)
    out = []
    for start in range(0, len(STREAM), size):
        out += frames.feed(STREAM[start : start + size])
    assert out == MESSAGES and frames.close == (1012, "restart") and frames.pings == [b"hello"]


def test_close_without_a_code_is_1005() -> None:
    frames = ServerFrames(100)
    assert frames.feed(frame(Opcode.CLOSE, b"")) == [] and frames.close == (NO_STATUS, "")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(Opcode.TEXT, b"hi", mask=True), 1002),  # servers never mask
        (frame(Opcode.TEXT, b"z" * 101), 1009),
        (frame(Opcode.TEXT, b"z" * 60, fin=False) + frame(Opcode.CONT, b"z" * 60), 1009),
        (frame(Opcode.CONT, b"orphan"), 1002),
        (frame(Opcode.TEXT, b"a", fin=False) + frame(Opcode.TEXT, b"b"), 1002),
        (bytes([0x09, 0x01]) + b"p", 1002),  # a fragmented ping
        (bytes([0x83, 0x00]), 1002),  # reserved data opcode
        (bytes([0xC1, 0x00]), 1002),  # RSV1 with no extension
        (frame(Opcode.CLOSE, b"\x03"), 1002),
        (frame(Opcode.CLOSE, b"\x03\xe8\xff"), 1007),
    ],
)
def test_violations_raise_with_the_close_code(data: bytes, code: int) -> None:
    with pytest.raises(FrameError) as raised:
        ServerFrames(100).feed(data)
    assert raised.value.code == code

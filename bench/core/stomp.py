"""STOMP 1.2 frames (https://stomp.github.io/stomp-specification-1.2.html), as a load client needs them. Pure.

A frame is a command line, ``name:value`` header lines, a blank line and a body ended by NUL; a bare
EOL between frames is a heart-beat. ``frame`` encodes one (header values escaped as §"Value Encoding"
says, except in CONNECT and CONNECTED), ``frames`` splits whole frames into ``Frame``s. A broker may
send several frames in one WebSocket message or cut one across messages (STOMP is a stream; RabbitMQ's
web_stomp sends one a message, stomp.js reads either): ``whole_length`` says where the whole frames end,
so that a receiver can carry the rest over to the next message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

SUBPROTOCOL: Final = "v12.stomp"
HEARTBEAT: Final = b"\n"
_ESCAPES: Final = (("\\", "\\\\"), ("\r", "\\r"), ("\n", "\\n"), (":", "\\c"))
_UNESCAPED_COMMANDS: Final = frozenset({"CONNECT", "CONNECTED"})


class StompError(ValueError):
    """Bytes that are not (whole) STOMP frames."""


@dataclass(slots=True, frozen=True)
class Frame:
    command: str
    headers: dict[str, str]
    body: bytes = b""


def _escape(value: str) -> str:
    for raw, escaped in _ESCAPES:
        value = value.replace(raw, escaped)
    return value


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    table = {"\\": "\\", "r": "\r", "n": "\n", "c": ":"}
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            if nxt not in table:
                raise StompError(f"undefined escape \\{nxt} in a header")
            char = table[nxt]
        out.append(char)
    return "".join(out)


def frame(command: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """One frame; ``content-length`` is added when there is a body."""
    escape = command not in _UNESCAPED_COMMANDS
    lines = [command]
    for name, value in (headers or {}).items():
        lines.append(f"{_escape(name)}:{_escape(value)}" if escape else f"{name}:{value}")
    if body:
        lines.append(f"content-length:{len(body)}")
    return ("\n".join(lines) + "\n\n").encode() + body + b"\x00"


_MESSAGE: Final = b"MESSAGE\n"
_SUBSCRIPTION: Final = b"\nsubscription:"


def simple_message(data: bytes) -> tuple[str, bytes] | None:
    """(subscription, body) when ``data`` is exactly one MESSAGE frame (EOLs after its NUL allowed) with LF
    line ends, no escaped header and no NUL in its body (what a broker's delivery of a JSON body is); None
    means: use ``frames``. The receive hot path: a few finds instead of parsing every header."""
    if not data.startswith(_MESSAGE):
        return None
    head_end = data.find(b"\n\n")
    at = data.find(_SUBSCRIPTION, 0, head_end)
    stop = data.find(b"\x00")
    if at < 0 or stop < 0 or b"\\" in data[:head_end] or b"\r" in data[:head_end]:
        return None
    if stop != len(data) - 1 and data[stop + 1 :].strip(b"\r\n"):
        return None
    start = at + len(_SUBSCRIPTION)
    return data[start : data.find(b"\n", start)].decode(), data[head_end + 2 : stop]


_CONTENT_LENGTH: Final = b"\ncontent-length:"


def _skip_eols(data: bytes, pos: int, end: int) -> int:
    """Past the heart-beats, and the EOLs a server may put after a NUL."""
    while pos < end and data[pos] in b"\r\n":
        pos += 1
    return pos


def _head_end(data: bytes, pos: int) -> tuple[int, int]:
    """Where the headers of the frame at ``pos`` end, and the length of the blank line; (-1, 0) if not in ``data``."""
    head_end, gap = data.find(b"\n\n", pos), 2
    crlf = data.find(b"\r\n\r\n", pos, len(data) if head_end < 0 else head_end + 3)  # only a head's worth
    if crlf >= 0:
        head_end, gap = crlf, 4
    return (head_end, gap) if head_end >= 0 else (-1, 0)


def _body_end(data: bytes, pos: int, head_end: int, start: int) -> int:
    """Where the body starting at ``start`` ends (its NUL, by ``content-length`` if the first such header is a
    number, else the first NUL); -1 if not in ``data``."""
    at = data.find(_CONTENT_LENGTH, pos, head_end)
    if at >= 0:
        value_at = at + len(_CONTENT_LENGTH)
        line_end = data.find(b"\n", value_at, head_end)
        value = data[value_at : head_end if line_end < 0 else line_end].rstrip(b"\r")
        if value.isdigit():
            stop = start + int(value)
            return stop if stop < len(data) else -1
    return data.find(b"\x00", start)


def whole_length(data: bytes) -> int:
    """How many leading bytes of ``data`` are whole frames and heart-beats: the rest is a frame cut at the
    end of one WebSocket message, to be completed by the next."""
    pos, end = 0, len(data)
    while (pos := _skip_eols(data, pos, end)) < end:
        head_end, gap = _head_end(data, pos)
        stop = _body_end(data, pos, head_end, head_end + gap) if head_end >= 0 else -1
        if stop < 0:
            return pos
        pos = stop + 1
    return end


def frames(data: bytes) -> list[Frame]:
    """The frames of one WebSocket message (heart-beats skipped); StompError when it is not whole frames."""
    out: list[Frame] = []
    pos, end = 0, len(data)
    while (pos := _skip_eols(data, pos, end)) < end:
        head_end, gap = _head_end(data, pos)
        if head_end < 0:
            raise StompError("a frame without the blank line that ends its headers")
        head = data[pos:head_end].decode()
        lines = (head.replace("\r\n", "\n") if "\r" in head else head).split("\n")
        command = lines[0]
        escape = command not in _UNESCAPED_COMMANDS
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise StompError(f"a header line without a colon: {line!r}")
            if escape and "\\" in line:
                name, value = _unescape(name), _unescape(value)
            if name not in headers:  # the first of repeated headers counts (§"Repeated Header Entries")
                headers[name] = value
        start = head_end + gap
        stop = _body_end(data, pos, head_end, start)
        if stop < 0 or data[stop] != 0:
            raise StompError(f"{command} frame not ended by NUL")
        out.append(Frame(command, headers, data[start:stop]))
        pos = stop + 1
    return out

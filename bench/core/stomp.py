"""STOMP 1.2 frames (https://stomp.github.io/stomp-specification-1.2.html), as a load client needs them. Pure.

A frame is a command line, ``name:value`` header lines, a blank line and a body ended by NUL; a bare
EOL between frames is a heart-beat. ``frame`` encodes one (header values escaped as §"Value Encoding"
says, except in CONNECT and CONNECTED), ``frames`` splits the bytes of one WebSocket message into
``Frame``s. Over WebSocket a frame arrives whole (RabbitMQ's web_stomp sends one per message), so an
unterminated frame raises ``StompError`` instead of being kept for the next message.
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
    """(subscription, body) when ``data`` is exactly one MESSAGE frame with LF line ends, no escaped header
    and no NUL in its body (what a broker's delivery of a JSON body is); None means: use ``frames``.
    The receive hot path: a few finds instead of parsing every header."""
    if not data.startswith(_MESSAGE):
        return None
    head_end = data.find(b"\n\n")
    at = data.find(_SUBSCRIPTION, 0, head_end)
    if at < 0 or data.find(b"\x00") != len(data) - 1 or b"\\" in data[:head_end] or b"\r" in data[:head_end]:
        return None
    start = at + len(_SUBSCRIPTION)
    return data[start : data.find(b"\n", start)].decode(), data[head_end + 2 : -1]


def frames(data: bytes) -> list[Frame]:
    """The frames of one WebSocket message (heart-beats skipped); StompError when it is not whole frames."""
    out: list[Frame] = []
    pos, end = 0, len(data)
    while pos < end:
        while pos < end and data[pos] in b"\r\n":  # heart-beats, and the EOLs a server may put after NUL
            pos += 1
        if pos >= end:
            break
        head_end, gap = data.find(b"\n\n", pos), 2
        crlf = data.find(b"\r\n\r\n", pos)
        if crlf >= 0 and (head_end < 0 or crlf < head_end):
            head_end, gap = crlf, 4
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
        length = headers.get("content-length")
        stop = start + int(length) if length is not None and length.isdigit() else data.find(b"\x00", start)
        if stop < 0 or stop >= end or data[stop] != 0:
            raise StompError(f"{command} frame not ended by NUL")
        out.append(Frame(command, headers, data[start:stop]))
        pos = stop + 1
    return out

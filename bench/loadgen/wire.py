"""The seam between the load users and a server's wire protocol: one object per protocol, picked by name.

A user never spells a protocol's field names. It asks its ``Wire`` for the bytes of a subscribe, a
publish, a read receipt or a status change, and for the events in a frame the server sent, in the
canonical shapes of ``bench.core.protocol`` (``{"type": "CHAT_MESSAGE", "channelId", "message": {"id",
"clientMsgId", ...}}``, ``{"type": "SUBSCRIBED", "channelId", "lastMessageId"}``, ...). The benchmark tag
(publisher, sequence, intended and sent times) goes wherever the protocol can carry it, and the wire puts
it back under ``clientMsgId``: integrity and latency then assume nothing of the server beyond delivering
the payload.

A wire also says how to open the connection: the subprotocols to offer at the upgrade, text or binary
messages, its default path, frames to send right after the upgrade (a protocol's own login, answered by
the ``OPENED`` event) and a keepalive frame with its interval; replies it owes the server (a pong) come
back from ``decode`` as ``SEND`` events for the user to send.

``chat`` is this project's protocol (docs/PROTOCOL.md), and the default; ``socketio``, ``stomp`` and
``mqtt`` are in ``bench.loadgen.adapters`` (docs/ADAPTERS.md). A wire declares what it can do
(``capabilities``); a scenario that needs more says so before it runs (``require``, exit 2).

Beyond the frames, a wire may describe its HTTP side (``WireHooks``: login and history requests,
frames sent right after the upgrade without an answer awaited); one that does not inherit them gets the
chat protocol's. ``--protocol FILE.toml`` (or the name of a shipped dialect, ``seed``) is a ``DialectWire``:
a JSON protocol described by a file (``bench.core.dialect``, docs/BRING_YOUR_OWN.md).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol, cast
from urllib.parse import quote

import orjson

from bench.core import dialect, protocol
from bench.core.dialect import HttpCall
from bench.core.exceptions import ConfigError, UsageError
from bench.loadgen import adapters
from bench.loadgen.wirekit import (
    CATCH_UP,
    ECHO,
    HISTORY,
    LAST_MESSAGE_ID,
    OWN_LOGIN,
    PRESENCE,
    READ_RECEIPTS,
    STREAM,
    Credentials,
    ws_url,
)

__all__ = [
    "CATCH_UP", "ECHO", "HISTORY", "LAST_MESSAGE_ID", "PRESENCE", "READ_RECEIPTS", "STREAM", "Credentials", "ws_url"
]  # fmt: skip
DIALECTS_DIR: Final = Path(__file__).resolve().parent / "dialects"  # shipped dialect files, by name


class Wire(Protocol):
    """One wire protocol, as the load users see it."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The WebSocket subprotocols to offer at the upgrade."""
        ...

    @property
    def binary(self) -> bool:
        """Whether frames are sent as binary WebSocket messages (else text)."""
        ...

    @property
    def default_path(self) -> str:
        """The WebSocket path when ``--ws-path`` is not given."""
        ...

    @property
    def keepalive_s(self) -> float | None:
        """How often the user sends ``keepalive()`` on an open connection; None: never."""
        ...

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        """The WebSocket URL for Locust's ``--host`` (http(s):// or ws(s)://), the token placed as it wants."""
        ...

    def opening(self, credentials: Credentials) -> list[bytes]:
        """Frames to send right after the upgrade (a login); when there are any, the user waits for the
        ``OPENED`` event before it subscribes."""
        ...

    def keepalive(self) -> bytes: ...

    def subscribe(self, channel: str, now_ms: int) -> bytes: ...

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes: ...

    def read_receipt(self, channel: str, message_id: int, now_ms: int) -> bytes: ...

    def user_status(self, status: str, now_ms: int) -> bytes: ...

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        """The events of one frame, in canonical shapes (plus ``SEND``, ``OPENED`` and ``ACKED`` of
        ``bench.loadgen.wirekit``); ProtocolError when it is not the protocol's. The events may be shared
        by every user of the process that received the same bytes, so decoding depends on the bytes alone."""
        ...


class StreamWire(Wire, Protocol):
    """A wire whose packets may straddle WebSocket messages (capability ``STREAM``: MQTT, STOMP over WebSocket):
    each user carries the incomplete tail of one message over to the next and decodes whole packets."""

    def whole(self, data: bytes) -> int:
        """How many leading bytes of ``data`` are whole packets; ProtocolError when it cannot be framed."""
        ...


def stream_of(wire: Wire) -> StreamWire | None:
    """The wire as a ``StreamWire`` when its packets may straddle messages, else None."""
    return cast(StreamWire, wire) if STREAM in wire.capabilities else None


class WireHooks:
    """A wire's HTTP side and first frames; these defaults are the chat protocol's (docs/PROTOCOL.md)."""

    def first_frames(self, token: str | None) -> list[bytes]:
        """Frames sent right after the upgrade with no answer awaited (a token message); none by default."""
        return []

    def login_call(self, user: str, password: str) -> HttpCall | None:
        """The HTTP request that yields a token (``--auth login``), or None: the protocol has no HTTP login."""
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return HttpCall(path="/auth/token", headers={"Authorization": f"Basic {basic}"})

    def login_token(self, data: Any) -> str | None:
        """The token in the login answer (decoded JSON)."""
        token = data.get("token") if isinstance(data, dict) else None
        return token if isinstance(token, str) else None

    def history_call(
        self, channel: str, token: str | None, *, before: object = None, after: object = None, limit: int = 20
    ) -> HttpCall:
        """One page of history (``before``/``after`` an id, at most ``limit``)."""
        query = f"limit={limit}" + "".join(
            f"&{k}={v}" for k, v in (("before", before), ("after", after)) if v is not None
        )
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return HttpCall(path=f"/channels/{quote(channel, safe='')}/messages?{query}", headers=headers)

    def history_page(self, data: Any, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """A page's stored messages (canonical: ``id``, ``clientMsgId``, ...) and whether more are there."""
        messages = data.get("messages", []) if isinstance(data, dict) else []
        return list(messages), bool(data.get("hasMore", False)) if isinstance(data, dict) else False


class _OpeningLogin(WireHooks):
    """A protocol that logs in in its opening frames (STOMP, MQTT CONNECT): ``--auth login`` is that."""

    def login_call(self, user: str, password: str) -> HttpCall | None:
        return None


CHAT_HOOKS: Final = WireHooks()
OPENING_LOGIN_HOOKS: Final = _OpeningLogin()


def hooks_of(wire: Wire) -> WireHooks:
    """The wire's hooks, or for a wire that declares none the chat protocol's (its HTTP login), unless
    the wire logs in in its opening frames (``OWN_LOGIN``)."""
    if isinstance(wire, WireHooks):
        return wire
    return OPENING_LOGIN_HOOKS if OWN_LOGIN in wire.capabilities else CHAT_HOOKS


class ChatWire(WireHooks):
    """This project's protocol: JSON objects, the tag in ``clientMsgId``, arrays where negotiated."""

    name: ClassVar[str] = "chat"
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {HISTORY, READ_RECEIPTS, PRESENCE, LAST_MESSAGE_ID, ECHO, CATCH_UP}
    )
    subprotocols: ClassVar[tuple[str, ...]] = (protocol.BATCH_SUBPROTOCOL,)  # arrays where offered: fewer frames
    binary: ClassVar[bool] = False
    default_path: ClassVar[str] = "/ws"
    keepalive_s: ClassVar[float | None] = None  # the server pings; the client answers

    def __init__(self, settings: Mapping[str, str] | None = None) -> None:
        if settings:
            raise UsageError(f"protocol chat has no settings (given {', '.join(sorted(settings))})")

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        return ws_url(target, ws_path, token)

    def opening(self, credentials: Credentials) -> list[bytes]:
        return []  # the token in the URL is the login

    def keepalive(self) -> bytes:
        return b""

    def subscribe(self, channel: str, now_ms: int) -> bytes:
        return orjson.dumps(protocol.subscribe(channel, now_ms))

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes:
        return orjson.dumps(protocol.publish(channel, content, now_ms, tag, message_type))

    def read_receipt(self, channel: str, message_id: int, now_ms: int) -> bytes:
        return orjson.dumps(protocol.read_receipt(channel, message_id, now_ms))

    def user_status(self, status: str, now_ms: int) -> bytes:
        return orjson.dumps(protocol.user_status(status, now_ms))

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        return protocol.decode_frame(payload)


class DialectWire(WireHooks):
    """A JSON chat protocol described by a dialect file (``bench.core.dialect``)."""

    name: ClassVar[str] = "dialect"  # the instance's own name is ``self.name`` (the file's ``name``)
    capabilities: ClassVar[frozenset[str]] = frozenset()  # per instance, from the file
    subprotocols: ClassVar[tuple[str, ...]] = ()
    binary: ClassVar[bool] = False
    default_path: ClassVar[str] = "/ws"
    keepalive_s: ClassVar[float | None] = None

    def __init__(self, spec: dialect.Dialect) -> None:
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]  # an instance's name, shown in results
        caps = {READ_RECEIPTS, PRESENCE, ECHO}
        if spec.history is not None:
            caps |= {HISTORY, CATCH_UP} if spec.history.after else {HISTORY}
        if spec.messages["subscribed"].path("last_message_id"):
            caps.add(LAST_MESSAGE_ID)
        self.capabilities = frozenset(caps)  # type: ignore[misc]

    @classmethod
    def from_file(cls, path: Path) -> DialectWire:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the dialect file ({exc.strerror})") from None
        return cls(dialect.parse(text, source=str(path)))

    def url(self, target: str, ws_path: str, token: str | None) -> str:
        return ws_url(target, ws_path, None) + self.spec.ws_query(token)

    def subscribe(self, channel: str, now_ms: int) -> bytes:
        return self.spec.subscribe(channel, now_ms)

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes:
        return self.spec.publish(channel, content, now_ms, tag, message_type)

    def read_receipt(self, channel: str, message_id: int, now_ms: int) -> bytes:
        return self.spec.read_receipt(channel, message_id, now_ms)

    def user_status(self, status: str, now_ms: int) -> bytes:
        return self.spec.user_status(status, now_ms)

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        return self.spec.decode(payload)

    def opening(self, credentials: Credentials) -> list[bytes]:
        return []  # no login of its own that the server answers

    def keepalive(self) -> bytes:
        return b""

    def first_frames(self, token: str | None) -> list[bytes]:
        return self.spec.opening(token)

    def login_call(self, user: str, password: str) -> HttpCall | None:
        return self.spec.login_call(user, password)

    def login_token(self, data: Any) -> str | None:
        return self.spec.login_token(data)

    def history_call(
        self, channel: str, token: str | None, *, before: object = None, after: object = None, limit: int = 20
    ) -> HttpCall:
        return self.spec.history_call(channel, token, before=before, after=after, limit=limit)

    def history_page(self, data: Any, limit: int) -> tuple[list[dict[str, Any]], bool]:
        return self.spec.history_page(data, limit)


WIRES: Final[dict[str, Callable[[Mapping[str, str]], Wire]]] = {
    ChatWire.name: ChatWire,
    adapters.SocketIOWire.name: adapters.SocketIOWire,
    adapters.StompWire.name: adapters.StompWire,
    adapters.MqttWire.name: adapters.MqttWire,
}
DEFAULT_WIRE: Final = ChatWire.name


def shipped_dialects() -> list[str]:
    """The names of the dialect files that come with the tool (``seed``)."""
    return sorted(path.stem for path in DIALECTS_DIR.glob("*.toml"))


def wire_for(name: str, settings: Mapping[str, str] | None = None) -> Wire:
    """The wire called ``name`` with its ``settings``, a dialect file (``*.toml``) or a shipped dialect's
    name; UsageError naming the known ones otherwise (ConfigError for a bad dialect file)."""
    if name in WIRES:
        return WIRES[name](settings or {})
    if settings:
        raise UsageError(
            f"protocol {name}: a dialect takes no --wire-set settings (given {', '.join(sorted(settings))})"
        )
    if name.endswith(".toml"):
        return DialectWire.from_file(Path(name))
    if name in shipped_dialects():
        return DialectWire.from_file(DIALECTS_DIR / f"{name}.toml")
    known = ", ".join(sorted([*WIRES, *shipped_dialects()]))
    raise UsageError(f"unknown protocol {name!r}; known: {known}, or a dialect file FILE.toml")


def require(wire: Wire, needed: frozenset[str], scenario: str) -> None:
    """UsageError when ``wire`` cannot do what ``scenario`` needs: say so, rather than run half of it."""
    missing = sorted(needed - wire.capabilities)
    if missing:
        raise UsageError(f"{scenario} needs {', '.join(missing)}, which protocol {wire.name!r} does not offer")

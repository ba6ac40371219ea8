"""What every wire shares (``bench.loadgen.wire`` is the seam, ``bench.loadgen.adapters`` the foreign protocols).

Capability names, the two events a wire may return besides the canonical ones (``SEND``: a frame the
user must send on its own, e.g. Engine.IO's pong; ``OPENED``: the protocol's own login was accepted),
the credentials for that login, the WebSocket URL, and ``settings``: an adapter's typed config built
from ``--wire-config FILE.toml`` and ``--wire-set k=v,...`` (strings, coerced to the field's type).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit

from bench.core.exceptions import UsageError

# What a wire may be able to do; scenarios name what they need.
HISTORY: Final = "history"  # paging through GET history (infinite scroll, catch-up after a reconnect)
READ_RECEIPTS: Final = "read_receipts"
PRESENCE: Final = "presence"
LAST_MESSAGE_ID: Final = "last_message_id"  # SUBSCRIBED says where the channel stood
ECHO: Final = "echo"  # the publisher receives its own message (its acknowledgement)
CATCH_UP: Final = "catch_up"  # history after an id: what a reconnected user missed
STREAM: Final = "stream"  # packets may straddle WebSocket messages (MQTT, STOMP): the user carries the tail over
OWN_LOGIN: Final = "own_login"  # it logs in in its opening frames (--user, --password): no HTTP login, no token

# Events of a wire's own, beside bench.core.protocol's canonical types.
SEND: Final = "_SEND"  # {"type": SEND, "frame": bytes}: the user sends ``frame`` (a pong, a PUBACK)
OPENED: Final = "_OPENED"  # the login frames of ``Wire.opening`` were accepted (CONNECTED, CONNACK, 40)
ACKED: Final = "PUBLISH_ACK"  # the server took a publish (RECEIPT, PUBACK, a Socket.IO ack): counted


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """For a protocol's own login (STOMP CONNECT, MQTT CONNECT): who, and a client id unique per user."""

    client_id: str
    user: str
    password: str


def ws_url(target: str, ws_path: str, token: str | None, query: str = "") -> str:
    """``ws(s)://HOST:PORT/PATH?query&token=...`` for an http(s):// or ws(s):// target."""
    parts = urlsplit(target)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme or "ws")
    items = [query] if query else []
    if token is not None:
        items.append(f"token={quote(token, safe='')}")
    return f"{scheme}://{parts.netloc}{ws_path}" + (f"?{'&'.join(items)}" if items else "")


def read_settings(path: str, section: str, overrides: str) -> dict[str, str]:
    """The ``[section]`` table of the TOML file at ``path`` (if any), then ``k=v,k=v`` overrides."""
    settings: dict[str, str] = {}
    if path:
        try:
            table = tomllib.loads(Path(path).read_text()).get(section, {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"--wire-config {path}: {exc}") from None
        settings.update({str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in table.items()})
    for item in filter(None, (part.strip() for part in overrides.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--wire-set {item!r} must look like name=value")
        settings[key.strip().replace("-", "_")] = value.strip()
    return settings


Config = TypeVar("Config")
_TRUE: Final = frozenset({"1", "true", "on", "yes"})
_FALSE: Final = frozenset({"0", "false", "off", "no"})


def configure(kind: type[Config], settings: Mapping[str, str], protocol: str) -> Config:
    """``kind`` (a dataclass of str, int, float and bool fields with defaults) from string settings."""
    fields = {field.name: field for field in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise UsageError(f"protocol {protocol}: unknown setting {', '.join(unknown)}; known: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, text in settings.items():
        default: Any = fields[name].default
        try:
            if isinstance(default, bool):
                if text.lower() not in _TRUE | _FALSE:
                    raise ValueError(text)
                values[name] = text.lower() in _TRUE
            else:
                values[name] = type(default)(text)
        except ValueError:
            raise UsageError(f"protocol {protocol}: {name}={text!r} is not a {type(default).__name__}") from None
    return kind(**values)

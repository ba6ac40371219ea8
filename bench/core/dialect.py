"""JSON chat protocols described by a TOML file (a *dialect*), like the seed's. Pure: no I/O.

A dialect names, for a protocol of JSON objects over one WebSocket: the HTTP login (or none), where
the token goes on the upgrade, each message's type name and field paths (dotted: ``message.id``),
whether arrays of events may arrive, and the HTTP history request (or none). ``Dialect`` builds the
client's frames and turns the server's into the canonical shapes of ``bench.core.protocol``; the
benchmark tag travels in a field the dialect names, or at the head of the content (``tag = "content"``)
when the protocol has no field the server echoes, and comes back as ``clientMsgId``.

    name = "seed"
    login = { method = "POST", url = "/auth/login", body = { username = "{user}", password = "{password}" },
              token = "token" }
    connect = { token = "query", param = "token" }
    [publish]
    type = "PUBLISH"
    channel = "channelId"
    content = "content"
    tag = "content"

Every key is checked: a wrong one is a ConfigError naming it (``publish.chanel: unknown key``).
See docs/BRING_YOUR_OWN.md for the whole format.
"""

from __future__ import annotations

import base64
import tomllib
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import orjson

from bench.core import protocol
from bench.core.exceptions import ConfigError, ProtocolError

FieldPath = tuple[str, ...]  # () : absent
IN_CONTENT: Final = "content"  # the tag's place when the protocol has no echoed field for it
TAG_SEPARATOR: Final = " "
TOKEN_PLACES: Final = ("query", "first_message", "none")
UNSUPPORTED_TOKEN_PLACES: Final = ("header", "subprotocol")  # the WebSocket client cannot send them yet

# Per message section: its roles (canonical name -> default path), and which of them are required.
SECTIONS: Final[dict[str, dict[str, str]]] = {
    "subscribe": {"type": "SUBSCRIBE", "channel": "channelId", "timestamp": "timestamp"},
    "subscribed": {"type": "SUBSCRIBED", "channel": "channelId", "last_message_id": "", "timestamp": "timestamp"},
    "publish": {
        "type": "PUBLISH",
        "channel": "channelId",
        "content": "content",
        "message_type": "messageType",
        "timestamp": "timestamp",
        "tag": "clientMsgId",
    },
    "chat_message": {
        "type": "CHAT_MESSAGE",
        "channel": "channelId",
        "message": "message",
        "id": "id",
        "sender": "senderId",
        "content": "content",
        "message_type": "messageType",
        "timestamp": "timestamp",
        "tag": "clientMsgId",
    },
    "read_receipt": {
        "type": "READ_RECEIPT",
        "channel": "channelId",
        "message_id": "messageId",
        "user": "userId",
        "timestamp": "timestamp",
    },
    "user_status": {"type": "USER_STATUS", "status": "status", "user": "userId", "timestamp": "timestamp"},
    "error": {"type": "ERROR", "code": "code", "reason": "reason"},
}
REQUIRED: Final = {
    "publish": ("channel", "content", "tag"),
    "chat_message": ("channel", "tag"),
    "subscribe": ("channel",),
}
LOGIN_KEYS: Final = {"method": "POST", "url": "/auth/login", "body": None, "headers": None, "token": "token"}
HISTORY_KEYS: Final = {
    "url": "/channels/{channel}/messages",
    "before": "before",
    "after": "after",
    "limit": "limit",
    "auth": "bearer",
    "messages": "messages",
    "has_more": "hasMore",
}
TOP_KEYS: Final = frozenset({"name", "type", "arrays", "login", "connect", "history", *SECTIONS})
# The canonical stored message's fields, by the chat_message role that fills them.
STORED: Final = (("id", "id"), ("sender", "senderId"), ("content", "content"), ("message_type", "messageType"),
                 ("timestamp", "timestamp"))  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpCall:
    """One HTTP request a wire asks for (login, a history page), relative to the target's base URL."""

    method: str = "GET"
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One message section: its type name and the path of each role ("" in the file: absent)."""

    type: str
    paths: dict[str, FieldPath]

    def path(self, role: str) -> FieldPath:
        return self.paths.get(role, ())


@dataclass(frozen=True, slots=True, kw_only=True)
class Login:
    method: str
    url: str
    body: dict[str, Any] | None
    headers: dict[str, str]
    token: FieldPath


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    url: str
    before: str
    after: str  # "": no paging forward (no catch-up after a reconnect)
    limit: str
    auth: str  # bearer | none | query:NAME
    messages: FieldPath
    has_more: FieldPath  # (): a full page means more


def get(obj: Any, path: FieldPath) -> Any:
    """The value at ``path`` in nested dicts, or None."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def put(obj: dict[str, Any], path: FieldPath, value: Any) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = value


def fill(template: Any, values: dict[str, str]) -> Any:
    """``{user}``-style placeholders replaced in every string of a TOML value."""
    if isinstance(template, str):
        for name, value in values.items():
            template = template.replace("{" + name + "}", value)
        return template
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    return template


def split_tag_from(content: object) -> tuple[str | None, object]:
    """(the tag at the head of ``content``, the content without it), or (None, content) when none is there."""
    if content.__class__ is not str:
        return None, content
    head, sep, rest = str(content).partition(TAG_SEPARATOR)
    if not sep or protocol.split_tag(head) is None:
        return None, content
    return head, rest


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialect:
    """A JSON chat protocol as a dialect file describes it."""

    name: str
    type_path: FieldPath
    arrays: bool
    login: Login | None
    token_place: str
    token_param: str
    first_message: dict[str, Any] | None
    messages: dict[str, Message]
    history: History | None

    # -- client frames -----------------------------------------------------------------------

    def _frame(self, section: str, values: dict[str, Any]) -> bytes:
        spec = self.messages[section]
        obj: dict[str, Any] = {}
        put(obj, self.type_path, spec.type)
        for role, value in values.items():
            path = spec.path(role)
            if path:
                put(obj, path, value)
        return orjson.dumps(obj)

    def subscribe(self, channel: str, now_ms: int) -> bytes:
        return self._frame("subscribe", {"channel": channel, "timestamp": now_ms})

    def publish(self, channel: str, content: str, now_ms: int, tag: str, message_type: str) -> bytes:
        in_content = self.messages["publish"].path("tag") == (IN_CONTENT,)
        values = {"channel": channel, "message_type": message_type, "timestamp": now_ms}
        if in_content:
            values["content"] = f"{tag}{TAG_SEPARATOR}{content}"
        else:
            values.update(content=content, tag=tag)
        return self._frame("publish", values)

    def read_receipt(self, channel: str, message_id: int | str, now_ms: int) -> bytes:
        return self._frame("read_receipt", {"channel": channel, "message_id": message_id, "timestamp": now_ms})

    def user_status(self, status: str, now_ms: int) -> bytes:
        return self._frame("user_status", {"status": status, "timestamp": now_ms})

    def opening(self, token: str | None) -> list[bytes]:
        """Frames sent right after the upgrade (the token as a first message)."""
        if self.token_place != "first_message" or self.first_message is None:
            return []
        return [orjson.dumps(fill(self.first_message, {"token": token or ""}))]

    def ws_query(self, token: str | None) -> str:
        """The upgrade URL's query (``?token=...``), or ""."""
        if self.token_place != "query" or token is None:
            return ""
        return f"?{self.token_param}={quote(token, safe='')}"

    # -- server frames -----------------------------------------------------------------------

    def decode(self, payload: bytes) -> list[dict[str, Any]]:
        """The events of one server frame in canonical shapes; ProtocolError when it is not JSON of ours."""
        try:
            obj = orjson.loads(payload)
        except ValueError as exc:
            raise ProtocolError(protocol.BAD_JSON, f"frame is not JSON: {exc}") from None
        if isinstance(obj, dict):
            return [self.event(obj)]
        # Arrays are taken even when ``arrays`` is false: the load client offers batching
        # (bench.core.protocol.BATCH_SUBPROTOCOL) to every server, and a server may take it up.
        if isinstance(obj, list) and all(isinstance(item, dict) for item in obj):
            return [self.event(item) for item in obj]
        raise ProtocolError(protocol.BAD_MESSAGE, "frame must be a JSON object or an array of objects")

    def event(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = get(obj, self.type_path)
        messages = self.messages
        chat = messages["chat_message"]
        if kind == chat.type:
            stored = get(obj, chat.path("message")) if chat.path("message") else obj
            stored = stored if isinstance(stored, dict) else {}
            channel = get(obj, chat.path("channel"))
            return protocol.chat_message(str(channel), self.stored(stored, channel), 0)
        if kind == messages["subscribed"].type:
            spec = messages["subscribed"]
            last = get(obj, spec.path("last_message_id")) if spec.path("last_message_id") else None
            out = {"type": protocol.SUBSCRIBED, "channelId": get(obj, spec.path("channel")), "lastMessageId": last}
            timestamp = get(obj, spec.path("timestamp"))
            return out if timestamp is None else {**out, "timestamp": timestamp}
        for section, canonical, roles in (
            ("error", protocol.ERROR, (("code", "code"), ("reason", "reason"))),
            ("read_receipt", protocol.READ_RECEIPT, (("channel", "channelId"), ("message_id", "messageId"),
                                                     ("user", "userId"))),
            ("user_status", protocol.USER_STATUS, (("status", "status"), ("user", "userId"))),
        ):  # fmt: skip
            spec = messages[section]
            if kind == spec.type:
                return {"type": canonical, **{name: get(obj, spec.path(role)) for role, name in roles}}
        return {**obj, "type": kind}

    def stored(self, raw: dict[str, Any], channel: object = None) -> dict[str, Any]:
        """A stored message (live or from history) in canonical form, the tag back in ``clientMsgId``."""
        chat = self.messages["chat_message"]
        out = {name: get(raw, chat.path(role)) for role, name in STORED}
        tag_path = chat.path("tag")
        if tag_path == (IN_CONTENT,):
            out["clientMsgId"], out["content"] = split_tag_from(out["content"])
        else:
            out["clientMsgId"] = get(raw, tag_path)
        out["channelId"] = channel if channel is not None else get(raw, chat.path("channel"))
        return out

    # -- HTTP --------------------------------------------------------------------------------

    def login_call(self, user: str, password: str) -> HttpCall | None:
        login = self.login
        if login is None:
            return None
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        values = {"user": user, "password": password, "basic": basic}
        headers = fill(login.headers, values)
        body = None
        if login.body is not None:
            body = orjson.dumps(fill(login.body, values))
            headers = {"Content-Type": "application/json", **headers}
        return HttpCall(method=login.method, path=fill(login.url, values), headers=headers, body=body)

    def login_token(self, data: Any) -> str | None:
        token = get(data, self.login.token) if self.login else None
        return token if isinstance(token, str) else None

    def history_call(
        self, channel: str, token: str | None, *, before: object = None, after: object = None, limit: int = 20
    ) -> HttpCall:
        history = self.history
        if history is None:
            raise ConfigError("this protocol has no history", key="history")
        query = [f"{history.limit}={limit}"] if history.limit else []
        for name, value in ((history.before, before), (history.after, after)):
            if value is not None and name:
                query.append(f"{name}={quote(str(value), safe='')}")
        headers: dict[str, str] = {}
        if token is not None and history.auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        elif token is not None and history.auth.startswith("query:"):
            query.append(f"{history.auth.removeprefix('query:')}={quote(token, safe='')}")
        path = history.url.replace("{channel}", quote(channel, safe=""))
        return HttpCall(path=f"{path}?{'&'.join(query)}" if query else path, headers=headers)

    def history_page(self, data: Any, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """A page's messages (canonical) and whether more are there."""
        assert self.history is not None
        raw = get(data, self.history.messages) if self.history.messages else data
        messages = [self.stored(m) for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        if self.history.has_more:
            return messages, bool(get(data, self.history.has_more))
        return messages, len(messages) >= limit


# -- reading a dialect file ------------------------------------------------------------------


def _path(text: object, key: str) -> FieldPath:
    if not isinstance(text, str):
        raise ConfigError(f"must be a string (a dotted field path), not {text!r}", key=key)
    parts = tuple(text.split(".")) if text else ()
    if any(not part for part in parts):
        raise ConfigError(f"{text!r} is not a dotted field path", key=key)
    return parts


def _table(data: dict[str, Any], key: str, defaults: dict[str, Any]) -> dict[str, Any] | None:
    """A section as a dict with its defaults filled in, None for ``"none"``; unknown keys refused."""
    value = data.get(key, {})
    if value == "none":
        return None
    if not isinstance(value, dict):
        raise ConfigError('must be a table, or "none"', key=key)
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown key; known: {', '.join(defaults)}", key=f"{key}.{unknown[0]}")
    return {**defaults, **value}


def _string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, not {value!r}", key=key)
    return value


def _message(data: dict[str, Any], section: str) -> Message:
    table = _table(data, section, SECTIONS[section])
    if table is None:
        raise ConfigError('cannot be "none"', key=section)
    paths = {role: _path(table[role], f"{section}.{role}") for role in SECTIONS[section] if role != "type"}
    for role in REQUIRED.get(section, ()):
        if not paths[role]:
            raise ConfigError("is required", key=f"{section}.{role}")
    return Message(type=_string(table["type"], f"{section}.type"), paths=paths)


def _login(data: dict[str, Any]) -> Login | None:
    table = _table(data, "login", LOGIN_KEYS)
    if table is None:
        return None
    method = _string(table["method"], "login.method").upper()
    if method not in ("GET", "POST"):
        raise ConfigError("must be GET or POST", key="login.method")
    for key in ("body", "headers"):
        if table[key] is not None and not isinstance(table[key], dict):
            raise ConfigError("must be a table (of templates: {user}, {password}, {basic})", key=f"login.{key}")
    token = _path(table["token"], "login.token")
    if not token:
        raise ConfigError("is required (where the token is in the JSON answer)", key="login.token")
    headers = {str(k): _string(v, f"login.headers.{k}") for k, v in (table["headers"] or {}).items()}
    url = _string(table["url"], "login.url")
    return Login(method=method, url=url, body=table["body"], headers=headers, token=token)


def _history(data: dict[str, Any]) -> History | None:
    table = _table(data, "history", HISTORY_KEYS)
    if table is None:
        return None
    strings = {key: _string(table[key], f"history.{key}") for key in HISTORY_KEYS}
    if strings["auth"] not in ("bearer", "none") and not strings["auth"].startswith("query:"):
        raise ConfigError("must be bearer, none or query:NAME", key="history.auth")
    return History(
        url=strings["url"],
        before=strings["before"],
        after=strings["after"],
        limit=strings["limit"],
        auth=strings["auth"],
        messages=_path(strings["messages"], "history.messages"),
        has_more=_path(strings["has_more"], "history.has_more"),
    )


def parse(text: str, *, source: str = "dialect") -> Dialect:
    """A dialect from the text of its TOML file; ConfigError naming the key (and ``source``) otherwise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not TOML: {exc}") from None
    try:
        return _parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _parse(data: dict[str, Any]) -> Dialect:
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown key; known: {', '.join(sorted(TOP_KEYS))}", key=unknown[0])
    connect = _table(data, "connect", {"token": "query", "param": "token", "first_message": None})
    if connect is None:
        connect = {"token": "none", "param": "", "first_message": None}
    place = connect["token"]
    if place in UNSUPPORTED_TOKEN_PLACES:
        raise ConfigError(f"{place!r}: the load client cannot send it on the upgrade yet; use query or "
                          "first_message", key="connect.token")  # fmt: skip
    if place not in TOKEN_PLACES:
        raise ConfigError(f"must be one of {', '.join(TOKEN_PLACES)}", key="connect.token")
    first = connect["first_message"]
    if place == "first_message" and not isinstance(first, dict):
        raise ConfigError('needs a table such as { type = "AUTH", token = "{token}" }', key="connect.first_message")
    arrays = data.get("arrays", False)
    if not isinstance(arrays, bool):
        raise ConfigError("must be true or false", key="arrays")
    type_path = _path(data.get("type", "type"), "type")
    if not type_path:
        raise ConfigError("is required (the field naming each message's type)", key="type")
    return Dialect(
        name=_string(data.get("name", "dialect"), "name"),
        type_path=type_path,
        arrays=arrays,
        login=_login(data),
        token_place=place,
        token_param=_string(connect["param"], "connect.param"),
        first_message=first,
        messages={section: _message(data, section) for section in SECTIONS},
        history=_history(data),
    )

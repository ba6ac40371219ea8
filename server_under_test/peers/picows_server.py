"""Peer chat server on picows + uvloop + orjson, written the idiomatic fast way for that stack.

It speaks the same wire protocol as the bundled server (docs/PROTOCOL.md) and validates client
messages with the same pure module (``bench.core.protocol``). Fan-out encodes each message once with
orjson and calls ``transport.send`` per subscriber: no awaits, no batching. A subscriber whose
write buffer passes ``--max-buffered-bytes`` is disconnected (counted in /metrics).

HTTP: picows hands every GET on the port to the listener factory before any upgrade check;
the factory answers /auth/token, /channels/{id}/messages, /healthz and /metrics with a complete
response carrying ``Access-Control-Allow-Origin: *`` (picows then closes the connection, so plain HTTP
here is one request per connection), and upgrades /ws?token= after checking the token, refusing a bad
one with 401. picows itself answers 400 to every method but GET and to any request body, so this peer
has no POST /auth/login, no CORS preflight and no 405 but for ``GET /auth/login``.

    python -m server_under_test.peers.picows_server --host 127.0.0.1 --port 0
prints ``chat server listening on http://HOST:PORT (peer picows)`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson
import uvloop
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from bench.core import protocol
from bench.core.exceptions import AuthError, ProtocolError
from bench.core.integers import parse_digits, parse_integer
from server_under_test.auth import Authenticator, Identity, bearer_token
from server_under_test.http_api import route_methods
from server_under_test.moderation import mentions
from server_under_test.peers.history_ring import HistoryRing
from server_under_test.peers.settings import PeerSettings, add_settings_arguments, settings_from_args
from server_under_test.shapes import presence, stored_message

PEER_NAME = "picows"
logger = logging.getLogger("picows.peer")
COUNTERS = (
    "connections_accepted",
    "frames_in",
    "frames_out",
    "messages_in",
    "messages_out",
    "slow_consumer_disconnects",
    "auth_failures",
    "errors",
    "http_requests",
)
HISTORY_PATH = re.compile(r"/channels/(.*)/messages")
WS_PATHS = frozenset({"/ws", "/"})
MAX_CHANNEL_ID = 128
TEXT = WSMsgType.TEXT
HTTPResponse = WSUpgradeResponseWithListener


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True, eq=False)
class Channel:
    subscribers: set[ChatListener]
    history: HistoryRing


class ChatHub:
    """All server state: channels, connected users and their status, counters; and the HTTP router.

    Semantics follow the bundled server (``server_under_test.app``): tokens and the channel rule come
    from ``server_under_test.auth``, mentions from ``server_under_test.moderation``.
    """

    def __init__(self, settings: PeerSettings) -> None:
        self.settings = settings
        self.auth = Authenticator(secret=settings.jwt_secret, password=settings.password, ttl_s=settings.token_ttl)
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, set[ChatListener]] = {}
        self.status: dict[str, str] = {}
        self.listeners: set[ChatListener] = set()
        self.closing = False
        self.started = time.monotonic()
        self.metrics = dict.fromkeys(COUNTERS, 0)

    def channel(self, channel_id: str) -> Channel:
        ch = self.channels.get(channel_id)
        if ch is None:
            ch = self.channels[channel_id] = Channel(set(), HistoryRing(self.settings.history_limit))
        return ch

    def identity(self, token: str | None) -> Identity | None:
        try:
            return self.auth.verify(token)
        except AuthError:
            self.metrics["auth_failures"] += 1
            return None

    # HTTP routing (the picows listener factory) -----------------------------------------------

    def route(self, request: WSUpgradeRequest) -> WSListener | HTTPResponse:
        path, _, query = request.path.decode("latin-1").partition("?")
        parsed = parse_qs(query, keep_blank_values=True)
        params = {key: values[-1] for key, values in parsed.items()}
        authorization = request.headers.get("Authorization")
        method = request.method.decode("latin-1")
        methods = route_methods(path)
        if methods is None:
            return error_response(404, f"no route for {path}")
        allow = ", ".join((*methods, "OPTIONS"))
        if method not in methods:  # picows itself answers 400 to any method but GET: this is GET /auth/login
            return error_response(405, f"{method} is not allowed here", {"Allow": allow})
        if path in WS_PATHS and "upgrade" in request.headers.get("Connection", "").lower():
            return self.upgrade(bearer_token(authorization, params.get("token")))
        if path == "/healthz":
            uptime = round(time.monotonic() - self.started, 3)
            body = {
                "status": "ok",
                "uptimeS": uptime,
                "preset": f"peer:{PEER_NAME}",
                "connections": len(self.listeners),
            }
            return json_response(200, body)
        self.metrics["http_requests"] += 1
        if path == "/metrics":
            headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Access-Control-Allow-Origin": "*"}
            return HTTPResponse(WSUpgradeResponse.create_ok_response(self.render_metrics().encode(), headers), None)
        if path == "/auth/token":
            return self.token_endpoint(authorization)
        if any(len(values) > 1 for values in parsed.values()):
            return error_response(400, "a query parameter is given twice")
        match = HISTORY_PATH.fullmatch(path)
        if match:
            return self.history_endpoint(bearer_token(authorization, params.get("token")), unquote(match[1]), params)
        if path in WS_PATHS:
            return error_response(426, "this path upgrades to a WebSocket", {"Upgrade": "websocket"})
        return error_response(404, f"no route for {path}")

    def upgrade(self, token: str | None) -> WSListener | HTTPResponse:
        if self.closing:
            return error_response(503, "shutting down")
        identity = self.identity(token)
        if identity is None:
            return error_response(401, "missing, invalid or expired token")
        return ChatListener(self, identity)

    def token_endpoint(self, authorization: str | None) -> HTTPResponse:
        try:
            user, token = self.auth.login_basic(authorization)
        except AuthError as exc:
            self.metrics["auth_failures"] += 1
            return error_response(401, str(exc).removeprefix("HTTP 401: "), {"WWW-Authenticate": 'Basic realm="chat"'})
        return json_response(200, {"token": token, "userId": user, "expiresIn": self.auth.ttl_s})

    def history_endpoint(self, token: str | None, channel_id: str, params: dict[str, str]) -> HTTPResponse:
        identity = self.identity(token)
        if identity is None:
            return error_response(401, "missing, invalid or expired token", {"WWW-Authenticate": 'Bearer realm="chat"'})
        if not channel_id or len(channel_id) > MAX_CHANNEL_ID:
            return error_response(400, f"channel id must be 1 to {MAX_CHANNEL_ID} characters")
        if not identity.may_use(channel_id):
            return error_response(403, f"channel {channel_id!r} is not open to you")
        try:
            before, after, limit = (
                parse_digits(params[name]) if params.get(name) else None for name in ("before", "after", "limit")
            )
        except ValueError as exc:
            return error_response(400, f"before/after/limit {exc}")
        if before is not None and after is not None:
            return error_response(400, "give 'before' or 'after', not both")
        settings = self.settings
        limit = settings.page_limit if limit is None else min(max(limit, 1), settings.max_page_limit)
        ch = self.channels.get(channel_id)
        messages, has_more = ch.history.page(before=before, after=after, limit=limit) if ch else ([], False)
        return json_response(200, {"channelId": channel_id, "messages": messages, "hasMore": has_more})

    def render_metrics(self) -> str:
        """The bundled server's metric names (docs/PROTOCOL.md, /metrics) for what a peer counts."""
        gauges = {
            "chat_connections": len(self.listeners),
            "chat_channels": sum(1 for ch in self.channels.values() if ch.subscribers),
            "chat_subscriptions": sum(len(listener.channels) for listener in self.listeners),
        }
        lines = [f"# TYPE {name} gauge\n{name} {value}" for name, value in gauges.items()]
        lines += [
            f"# TYPE chat_{name}_total counter\nchat_{name}_total {value}" for name, value in self.metrics.items()
        ]
        return "\n".join(lines) + "\n"

    # fan-out and the client messages ----------------------------------------------------------

    def fan_out(self, targets: set[ChatListener], msg: dict[str, Any]) -> None:
        """Encode once, then one ``transport.send`` per subscriber."""
        data = orjson.dumps(msg)
        for sub in targets:  # a slow-consumer disconnect only takes effect on the next loop turn
            sub.send(data)

    def handle(self, listener: ChatListener, data: bytes) -> None:
        msg = protocol.parse_client_message(data)
        if isinstance(msg, protocol.Publish):
            self.publish(listener, msg)
        elif isinstance(msg, protocol.Subscribe):
            self.subscribe(listener, msg.channel_id)
        elif isinstance(msg, protocol.Unsubscribe):
            self.unsubscribe(listener, msg.channel_id)
        elif isinstance(msg, protocol.ReadReceipt):
            self.read_receipt(listener, msg)
        else:
            self.user_status(listener, msg.status)

    def subscribed_channel(self, listener: ChatListener, channel_id: str) -> Channel:
        if channel_id not in listener.channels:
            if not listener.identity.may_use(channel_id):
                raise ProtocolError(protocol.FORBIDDEN, f"channel {channel_id!r} is not open to you")
            raise ProtocolError(protocol.NOT_SUBSCRIBED, f"subscribe to {channel_id!r} first")
        return self.channels[channel_id]

    def subscribe(self, listener: ChatListener, channel_id: str) -> None:
        if not listener.identity.may_use(channel_id):
            raise ProtocolError(protocol.FORBIDDEN, f"channel {channel_id!r} is not open to you")
        if channel_id not in listener.channels and len(listener.channels) >= self.settings.max_subscriptions:
            raise ProtocolError(protocol.BAD_MESSAGE, f"at most {self.settings.max_subscriptions} subscriptions")
        ch = self.channel(channel_id)
        first = not self.user_in(listener.user_id, ch)
        ch.subscribers.add(listener)
        listener.channels.add(channel_id)
        online = sorted({sub.user_id for sub in ch.subscribers if self.status.get(sub.user_id) != "OFFLINE"})
        listener.send(orjson.dumps(protocol.subscribed(channel_id, ch.history.last_id, online, now_ms())))
        if first:
            self.fan_out(ch.subscribers, presence("ONLINE", listener.user_id, channel_id, now_ms()))

    def user_in(self, user_id: str, ch: Channel) -> bool:
        return any(session in ch.subscribers for session in self.users.get(user_id, ()))

    def unsubscribe(self, listener: ChatListener, channel_id: str) -> None:
        if channel_id not in listener.channels:
            raise ProtocolError(protocol.NOT_SUBSCRIBED, f"not subscribed to {channel_id!r}")
        self.channels[channel_id].subscribers.discard(listener)
        listener.channels.discard(channel_id)
        listener.send(orjson.dumps(protocol.unsubscribed(channel_id, now_ms())))

    def publish(self, sender: ChatListener, msg: protocol.Publish) -> None:
        ch = self.subscribed_channel(sender, msg.channel_id)
        now = now_ms()
        message = stored_message(ch.history.last_id + 1, msg.channel_id, sender.user_id, msg, now)
        ch.history.append(message)
        self.metrics["messages_in"] += 1
        self.metrics["messages_out"] += len(ch.subscribers)
        self.fan_out(ch.subscribers, protocol.chat_message(msg.channel_id, message, now))
        if "@" in msg.content:
            self.notify_mentions(msg.channel_id, message)

    def notify_mentions(self, channel_id: str, message: dict[str, Any]) -> None:
        targets = {
            session
            for user in mentions(message["content"])
            if user != message["senderId"]
            for session in self.users.get(user, ())
        }
        if targets:
            note = protocol.notification(
                "mention",
                now_ms(),
                channelId=channel_id,
                messageId=message["id"],
                senderId=message["senderId"],
                content=message["content"][:200],
            )
            self.fan_out(targets, note)

    def read_receipt(self, listener: ChatListener, msg: protocol.ReadReceipt) -> None:
        ch = self.subscribed_channel(listener, msg.channel_id)
        try:
            message_id = parse_integer(msg.message_id)
        except ValueError as exc:
            raise ProtocolError(protocol.BAD_MESSAGE, f"'messageId' {exc}") from None
        if not 1 <= message_id <= ch.history.last_id:
            raise ProtocolError(protocol.BAD_MESSAGE, f"no message {message_id} in {msg.channel_id!r}")
        event = protocol.read_receipt_event(msg.channel_id, message_id, listener.user_id, now_ms())
        self.fan_out(ch.subscribers, event)

    def user_status(self, listener: ChatListener, status: str) -> None:
        """One USER_STATUS per channel the user is in, to its subscribers; the user's connections that are
        in no channel get one with ``channelId`` null."""
        user = listener.user_id
        self.status[user] = status
        sessions = self.users.get(user, set())
        for channel_id in sorted({channel_id for session in sessions for channel_id in session.channels}):
            self.fan_out(self.channels[channel_id].subscribers, presence(status, user, channel_id, now_ms()))
        lone = {session for session in sessions if not session.channels}
        if lone:
            self.fan_out(lone, presence(status, user, None, now_ms()))

    # connection lifecycle ---------------------------------------------------------------------

    def connected(self, listener: ChatListener) -> None:
        self.metrics["connections_accepted"] += 1
        self.listeners.add(listener)
        sessions = self.users.setdefault(listener.user_id, set())
        sessions.add(listener)
        if len(sessions) == 1:
            self.status[listener.user_id] = "ONLINE"

    def disconnected(self, listener: ChatListener) -> None:
        self.listeners.discard(listener)
        left: list[tuple[str, Channel]] = []
        for channel_id in listener.channels:
            ch = self.channels[channel_id]
            ch.subscribers.discard(listener)
            if not self.user_in(listener.user_id, ch):
                left.append((channel_id, ch))
        listener.channels.clear()
        sessions = self.users.get(listener.user_id, set())
        sessions.discard(listener)
        if not sessions:
            self.users.pop(listener.user_id, None)
            self.status.pop(listener.user_id, None)
            for channel_id, ch in left:
                self.fan_out(ch.subscribers, presence("OFFLINE", listener.user_id, channel_id, now_ms()))

    async def shutdown(self) -> None:
        """NOTIFICATION shutdown and close 1012 to everyone, then wait for them up to the timeout."""
        self.closing = True
        notice = orjson.dumps(
            protocol.notification(
                "shutdown", now_ms(), reason="server shutting down", retryAfterMs=self.settings.retry_after_ms
            )
        )
        listeners = list(self.listeners)
        for listener in listeners:
            listener.transport.send(TEXT, notice)
            listener.transport.send_close(WSCloseCode.SERVICE_RESTART, b"server restart")
        waits = [asyncio.ensure_future(listener.transport.wait_disconnected()) for listener in listeners]
        if waits:
            await asyncio.wait(waits, timeout=self.settings.shutdown_timeout)
        for listener in listeners:
            listener.transport.disconnect(graceful=False)


class ChatListener(WSListener):
    """One WebSocket connection: reassembles fragmented messages and hands each to the hub."""

    transport: WSTransport

    def __init__(self, hub: ChatHub, identity: Identity) -> None:
        self.hub = hub
        self.identity = identity
        self.user_id = identity.user_id
        self.channels: set[str] = set()
        self.partial: bytearray | None = None
        self.paused = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.hub.connected(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.hub.disconnected(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def send(self, data: bytes) -> None:
        """Write one frame; past the write-buffer bound, close with 1008 (slow consumer) instead."""
        if self.paused and self.transport.underlying_transport.get_write_buffer_size() > (
            self.hub.settings.max_buffered_bytes
        ):
            if not self.transport.is_close_frame_sent:
                self.hub.metrics["slow_consumer_disconnects"] += 1
                self.transport.send_close(WSCloseCode.POLICY_VIOLATION, b"slow consumer")
                self.transport.disconnect()  # after the buffered data; later sends are ignored
            return
        self.hub.metrics["frames_out"] += 1
        self.transport.send(TEXT, data)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        if kind not in (TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            return
        if not frame.fin or self.partial is not None:
            self.reassemble(frame)
            return
        self.receive(frame.get_payload_as_bytes())

    def reassemble(self, frame: WSFrame) -> None:
        if self.partial is None:
            self.partial = bytearray()
        self.partial += frame.get_payload_as_memoryview()
        if len(self.partial) > self.hub.settings.max_message_bytes:
            self.transport.send_close(WSCloseCode.MESSAGE_TOO_BIG, b"message too big")
            self.transport.disconnect()
        elif frame.fin:
            data, self.partial = bytes(self.partial), None
            self.receive(data)

    def receive(self, data: bytes) -> None:
        self.hub.metrics["frames_in"] += 1
        try:
            self.hub.handle(self, data)
        except ProtocolError as exc:
            self.refuse(exc.code, exc.reason)
        except Exception:
            logger.exception("failed on a client message")
            self.refuse(protocol.INTERNAL, "internal error")

    def refuse(self, code: str, reason: str) -> None:
        self.hub.metrics["errors"] += 1
        self.send(orjson.dumps(protocol.error(code, reason, now_ms())))


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    """The bundled server's error shape: ``{"error": ..., "status": ...}``."""
    return json_response(status, {"error": message, "status": status}, headers)


def json_response(status: int, body: dict[str, Any], extra_headers: dict[str, str] | None = None) -> HTTPResponse:
    headers = {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "Access-Control-Allow-Origin": "*",
        **(extra_headers or {}),
    }
    data = orjson.dumps(body)
    if status < 400:
        response = WSUpgradeResponse.create_ok_response(data, headers)
        if status != 200:
            response.status = status
    else:
        response = WSUpgradeResponse.create_error_response(status, data, headers)
    return HTTPResponse(response, None)


async def serve(settings: PeerSettings, on_listening: Callable[[str], None] = print) -> None:
    """Listen, print the address line, run until SIGTERM or SIGINT, then shut down gracefully."""
    hub = ChatHub(settings)
    server = await ws_create_server(
        hub.route,
        settings.host,
        settings.port,
        max_frame_size=settings.max_message_bytes,
        enable_auto_ping=settings.ping_interval > 0,
        auto_ping_idle_timeout=settings.ping_interval or 20,
        auto_ping_reply_timeout=settings.ping_interval or 20,
        logger_name="peer",
    )
    host, port = server.sockets[0].getsockname()[:2]
    on_listening(f"chat server listening on http://{host}:{port} (peer {PEER_NAME})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await hub.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_settings_arguments(parser)
    settings = settings_from_args(parser.parse_args(argv))
    uvloop.run(serve(settings, lambda line: print(line, flush=True)))
    sys.exit(0)


if __name__ == "__main__":
    main()

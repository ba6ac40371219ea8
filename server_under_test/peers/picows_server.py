"""Peer chat server on picows + uvloop + orjson, written the idiomatic fast way for that stack.

It speaks the same wire protocol as the bundled server (docs/PROTOCOL.md) and validates client
messages with the same pure module (``bench.protocol``). Fan-out encodes each message once with
orjson and calls ``transport.send`` per subscriber: no awaits, no batching. A subscriber whose
write buffer passes ``--max-buffered-bytes`` is disconnected (counted in /metrics).

HTTP: picows hands every request on the port to the listener factory before any upgrade check;
the factory answers /auth/token, /channels/{id}/messages, /healthz and /metrics with a complete
response (picows then closes the connection, so plain HTTP here is one request per connection),
and upgrades /ws?token= after checking the token, refusing a bad one with 401.

    python -m server_under_test.peers.picows_server --host 127.0.0.1 --port 0
prints ``chat server listening on http://HOST:PORT (peer picows)`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
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

from bench import protocol
from bench.exceptions import ProtocolError
from server_under_test.peers.history_ring import HistoryRing
from server_under_test.peers.settings import PeerSettings, add_settings_arguments, settings_from_args

PEER_NAME = "picows"
MENTION = re.compile(r"@([A-Za-z0-9_.-]+)")
TEXT = WSMsgType.TEXT
HTTPResponse = WSUpgradeResponseWithListener


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True, eq=False)
class Channel:
    subscribers: set[ChatListener]
    history: HistoryRing

    def online(self) -> list[str]:
        return list(dict.fromkeys(sub.user_id for sub in self.subscribers))


class ChatHub:
    """All server state: channels, connected users, counters; and the HTTP / upgrade router."""

    def __init__(self, settings: PeerSettings) -> None:
        self.settings = settings
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, set[ChatListener]] = {}
        self.listeners: set[ChatListener] = set()
        self.closing = False
        self.metrics = dict.fromkeys(
            ("connections_total", "frames_in", "frames_out", "errors", "auth_failures", "slow_consumer_drops"),
            0,
        )

    def channel(self, channel_id: str) -> Channel:
        ch = self.channels.get(channel_id)
        if ch is None:
            ch = self.channels[channel_id] = Channel(set(), HistoryRing(self.settings.history_limit))
        return ch

    # tokens -----------------------------------------------------------------------------------

    def issue_token(self, user_id: str) -> str:
        now = int(time.time())
        claims = {"sub": user_id, "iat": now, "exp": now + self.settings.token_ttl}
        return jwt.encode(claims, self.settings.jwt_secret, algorithm="HS256")

    def user_of(self, token: str | None) -> str | None:
        """The user id of a valid, unexpired token, or None."""
        if not token:
            return None
        try:
            claims = jwt.decode(token, self.settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp"]})
        except jwt.PyJWTError:
            return None
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and sub else None

    # HTTP routing (the picows listener factory) -----------------------------------------------

    def route(self, request: WSUpgradeRequest) -> WSListener | HTTPResponse:
        path, _, query = request.path.decode("latin-1").partition("?")
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        if request.method != b"GET":
            return json_response(405, {"error": "method not allowed"})
        if path == "/ws":
            return self.upgrade(request, params)
        if path == "/healthz":
            return json_response(200, {"status": "ok", "connections": len(self.listeners)})
        if path == "/metrics":
            return HTTPResponse(WSUpgradeResponse.create_ok_response(self.render_metrics().encode()), None)
        if path == "/auth/token":
            return self.token_endpoint(request.headers.get("Authorization", ""))
        match = re.fullmatch(r"/channels/([^/]+)/messages", path)
        if match:
            return self.history_endpoint(request, unquote(match[1]), params)
        return json_response(404, {"error": "not found"})

    def upgrade(self, request: WSUpgradeRequest, params: dict[str, str]) -> WSListener | HTTPResponse:
        if self.closing:
            return json_response(503, {"error": "shutting down"})
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user_id = self.user_of(params.get("token") or bearer)
        if user_id is None:
            self.metrics["auth_failures"] += 1
            return json_response(401, {"error": "missing, invalid or expired token"})
        return ChatListener(self, user_id)

    def token_endpoint(self, authorization: str) -> HTTPResponse:
        scheme, _, encoded = authorization.partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user = password = ""
        if scheme != "Basic" or not user or password != self.settings.password:
            self.metrics["auth_failures"] += 1
            return json_response(401, {"error": "invalid credentials"})
        body = {"token": self.issue_token(user), "userId": user, "expiresIn": self.settings.token_ttl}
        return json_response(200, body)

    def history_endpoint(self, request: WSUpgradeRequest, channel_id: str, params: dict[str, str]) -> HTTPResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or self.user_of(token) is None:
            self.metrics["auth_failures"] += 1
            return json_response(401, {"error": "missing, invalid or expired token"})
        try:
            before, after, limit = (int(params[k]) if k in params else None for k in ("before", "after", "limit"))
        except ValueError:
            return json_response(400, {"error": "before, after and limit must be integers"})
        if any(v is not None and v < 0 for v in (before, after)) or (limit is not None and limit <= 0):
            return json_response(400, {"error": "before and after must be >= 0, limit > 0"})
        if before is not None and after is not None:
            return json_response(400, {"error": "give before or after, not both"})
        limit = min(limit or self.settings.page_limit, self.settings.max_page_limit)
        ch = self.channels.get(channel_id)
        messages, has_more = ch.history.page(before=before, after=after, limit=limit) if ch else ([], False)
        return json_response(200, {"messages": messages, "hasMore": has_more})

    def render_metrics(self) -> str:
        lines = [f"chat_connections {len(self.listeners)}", f"chat_channels {len(self.channels)}"]
        lines += [f"chat_{name} {value}" for name, value in self.metrics.items()]
        return "\n".join(lines) + "\n"

    # fan-out ----------------------------------------------------------------------------------

    def fan_out(self, targets: set[ChatListener], msg: dict[str, Any]) -> None:
        """Encode once, then one ``transport.send`` per subscriber."""
        data = orjson.dumps(msg)
        for sub in targets:  # a slow-consumer disconnect only takes effect on the next loop turn
            sub.send(data)

    def publish(self, sender: ChatListener, msg: protocol.Publish) -> None:
        ch = self.subscribed_channel(sender, msg.channel_id)
        now = now_ms()
        message = {
            "id": ch.history.last_id + 1,
            "senderId": sender.user_id,
            "messageType": msg.message_type,
            "content": msg.content,
            "timestamp": msg.timestamp,
            "serverTimestamp": now,
            "clientMsgId": msg.client_msg_id,
        }
        ch.history.append(message)
        self.fan_out(ch.subscribers, protocol.chat_message(msg.channel_id, message, now))
        if "@" in msg.content:
            self.notify_mentions(sender, msg.channel_id, message)

    def notify_mentions(self, sender: ChatListener, channel_id: str, message: dict[str, Any]) -> None:
        for user_id in dict.fromkeys(MENTION.findall(message["content"])):
            listeners = self.users.get(user_id)
            if listeners and user_id != sender.user_id:
                note = protocol.notification(
                    "mention",
                    now_ms(),
                    channelId=channel_id,
                    messageId=message["id"],
                    userId=user_id,
                    **{"from": sender.user_id},
                )
                self.fan_out(listeners, note)

    def subscribed_channel(self, listener: ChatListener, channel_id: str) -> Channel:
        if channel_id not in listener.channels:
            raise ProtocolError(protocol.NOT_SUBSCRIBED, f"not subscribed to {channel_id}")
        return self.channels[channel_id]

    def handle(self, listener: ChatListener, data: bytes) -> None:
        msg = protocol.parse_client_message(data)
        if isinstance(msg, protocol.Publish):
            self.publish(listener, msg)
        elif isinstance(msg, protocol.Subscribe):
            ch = self.channel(msg.channel_id)
            ch.subscribers.add(listener)
            listener.channels.add(msg.channel_id)
            reply = protocol.subscribed(msg.channel_id, ch.history.last_id, ch.online(), now_ms())
            listener.send(orjson.dumps(reply))
        elif isinstance(msg, protocol.Unsubscribe):
            self.subscribed_channel(listener, msg.channel_id).subscribers.discard(listener)
            listener.channels.discard(msg.channel_id)
            listener.send(orjson.dumps(protocol.unsubscribed(msg.channel_id, now_ms())))
        elif isinstance(msg, protocol.ReadReceipt):
            ch = self.subscribed_channel(listener, msg.channel_id)
            event = protocol.read_receipt_event(msg.channel_id, msg.message_id, listener.user_id, now_ms())
            self.fan_out(ch.subscribers, event)
        else:
            self.broadcast_status(listener, msg.status)

    def broadcast_status(self, listener: ChatListener, status: str) -> None:
        """USER_STATUS to the user and everyone in the channels the user is in."""
        targets = {listener}
        for channel_id in listener.channels:
            targets |= self.channels[channel_id].subscribers
        self.fan_out(targets, protocol.user_status(status, now_ms(), listener.user_id))

    # connection lifecycle ---------------------------------------------------------------------

    def connected(self, listener: ChatListener) -> None:
        self.metrics["connections_total"] += 1
        self.listeners.add(listener)
        self.users.setdefault(listener.user_id, set()).add(listener)

    def disconnected(self, listener: ChatListener) -> None:
        self.listeners.discard(listener)
        sockets = self.users.get(listener.user_id, set())
        sockets.discard(listener)
        last_one = not sockets
        if last_one:
            self.users.pop(listener.user_id, None)
        for channel_id in listener.channels:
            ch = self.channels[channel_id]
            ch.subscribers.discard(listener)
            if last_one:
                self.fan_out(ch.subscribers, protocol.user_status("OFFLINE", now_ms(), listener.user_id))
        listener.channels.clear()

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

    def __init__(self, hub: ChatHub, user_id: str) -> None:
        self.hub = hub
        self.user_id = user_id
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
        if self.paused and self.transport.underlying_transport.get_write_buffer_size() > (
            self.hub.settings.max_buffered_bytes
        ):
            self.hub.metrics["slow_consumer_drops"] += 1
            self.transport.disconnect(graceful=False)
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
            self.hub.metrics["errors"] += 1
            self.send(orjson.dumps(protocol.error(exc.code, exc.reason, now_ms())))


def json_response(status: int, body: dict[str, Any]) -> HTTPResponse:
    headers = {"Content-Type": "application/json"}
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
        hub.route, settings.host, settings.port, max_frame_size=settings.max_message_bytes, logger_name="peer"
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

"""The HTTP side, answered from websockets' ``process_request`` before any upgrade:
``/auth/token``, ``/channels/{id}/messages``, ``/healthz``, ``/metrics``, and the token check of ``/ws``."""

from __future__ import annotations

import email.utils
import http
import time
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from bench.core.exceptions import AuthError
from server_under_test.app import ChatApp
from server_under_test.auth import bearer_token
from server_under_test.session import ChatConnection

WS_PATHS: Final = frozenset({"/ws", "/"})
MAX_CHANNEL_ID: Final = 128


class HttpError(Exception):
    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def respond(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    code = http.HTTPStatus(status)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
        ]
    )
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(code.value, code.phrase, headers, body)


class HttpApi:
    """Routes plain HTTP requests; returns None to let a valid WebSocket upgrade through."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        self.started = time.monotonic()

    def json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> Response:
        return respond(status, self.app.codec.dumps(payload), "application/json", extra)

    async def __call__(self, conn: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        try:
            if path in WS_PATHS and "upgrade" in header(request, "Connection").lower():
                self.authorize_upgrade(conn, request, params)
                return None
            self.app.metrics.chat_http_requests += 1
            return await self.route(path, request, params)
        except HttpError as exc:
            return self.json(exc.status, {"error": str(exc), "status": exc.status}, exc.headers)

    def authorize_upgrade(self, conn: ServerConnection, request: Request, params: dict[str, str]) -> None:
        try:
            identity = self.app.auth.verify(bearer_token(header(request, "Authorization"), params.get("token")))
        except AuthError as exc:
            self.app.metrics.chat_auth_failures += 1
            raise HttpError(401, exc.args[0].removeprefix("HTTP 401: ")) from None
        if isinstance(conn, ChatConnection):
            conn.identity = identity

    async def route(self, path: str, request: Request, params: dict[str, str]) -> Response:
        if path == "/healthz":
            return self.json(
                200,
                {
                    "status": "ok",
                    "uptimeS": round(time.monotonic() - self.started, 3),
                    "preset": self.app.config.preset,
                    "connections": len(self.app.hub.clients),
                },
            )
        if path == "/metrics":
            body = self.app.metrics.render(self.app.gauges()).encode()
            return respond(200, body, "text/plain; version=0.0.4; charset=utf-8")
        if path == "/auth/token":
            return self.token(request)
        if path.startswith("/channels/") and path.endswith("/messages"):
            channel_id = unquote(path[len("/channels/") : -len("/messages")])
            return await self.messages(channel_id, request, params)
        if path in WS_PATHS:
            raise HttpError(426, "this path upgrades to a WebSocket", headers={"Upgrade": "websocket"})
        raise HttpError(404, f"no route for {path}")

    def token(self, request: Request) -> Response:
        try:
            user_id, token = self.app.auth.login(header(request, "Authorization"))
        except AuthError as exc:
            self.app.metrics.chat_auth_failures += 1
            raise HttpError(
                401, exc.args[0].removeprefix("HTTP 401: "), headers={"WWW-Authenticate": 'Basic realm="chat"'}
            ) from None
        return self.json(200, {"token": token, "userId": user_id, "expiresIn": self.app.auth.ttl_s})

    async def messages(self, channel_id: str, request: Request, params: dict[str, str]) -> Response:
        try:
            identity = self.app.auth.verify(bearer_token(header(request, "Authorization"), params.get("token")))
        except AuthError as exc:
            self.app.metrics.chat_auth_failures += 1
            raise HttpError(
                401, exc.args[0].removeprefix("HTTP 401: "), headers={"WWW-Authenticate": 'Bearer realm="chat"'}
            ) from None
        if not channel_id or len(channel_id) > MAX_CHANNEL_ID:
            raise HttpError(400, f"channel id must be 1 to {MAX_CHANNEL_ID} characters")
        if not identity.may_use(channel_id):
            raise HttpError(403, f"channel {channel_id!r} is not open to you")
        try:
            before, after, limit = (int_param(params, name) for name in ("before", "after", "limit"))
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        if before is not None and after is not None:
            raise HttpError(400, "give 'before' or 'after', not both")
        config = self.app.config
        limit = config.history_page_size if limit is None else min(max(limit, 1), config.history_page_max)
        page = await self.app.history.page(channel_id, before=before, after=after, limit=limit)
        return self.json(200, {"channelId": channel_id, "messages": page.messages, "hasMore": page.has_more})


def header(request: Request, name: str) -> str:
    """All values of a request header joined with ', ' ('' when absent); repeated headers never raise."""
    return ", ".join(request.headers.get_all(name))


def int_param(params: dict[str, str], name: str) -> int | None:
    """A non-negative integer query parameter, None when absent or empty; ValueError otherwise."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"'{name}' must be an integer") from None
    if value < 0:
        raise ValueError(f"'{name}' must not be negative")
    return value

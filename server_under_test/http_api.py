"""The REST API and the WebSocket gate, answered by ``server_under_test.http11`` sessions on the WebSocket's
port: ``POST /auth/login``, ``GET /auth/token``, ``GET /channels/{id}/messages``, ``/healthz``, ``/metrics``,
CORS (preflights and ``Access-Control-Allow-Origin``), 405 with ``Allow``, and the token and ``Origin``
checks of ``GET /ws`` before it is handed to websockets."""

from __future__ import annotations

import os
import time
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from bench.core.exceptions import AuthError
from bench.core.integers import parse_digits
from server_under_test.app import ChatApp
from server_under_test.auth import Identity, bearer_token
from server_under_test.http11 import HttpError, HttpLimits, HttpRequest, HttpResponse, HttpSession, Upgrade

WS_PATHS: Final = frozenset({"/ws", "/"})
MAX_CHANNEL_ID: Final = 128
MAX_QUERY_FIELDS: Final = 32
HISTORY_PREFIX: Final = "/channels/"
HISTORY_SUFFIX: Final = "/messages"
READ: Final = ("GET", "HEAD")
ROUTES: Final[dict[str, tuple[str, ...]]] = {
    "/healthz": READ,
    "/metrics": READ,
    "/auth/token": ("GET",),
    "/auth/login": ("POST",),
    "/ws": ("GET",),
    "/": ("GET",),
}
CORS_METHODS: Final = "GET, HEAD, POST, OPTIONS"
CORS_HEADERS: Final = "Authorization, Content-Type"
CORS_MAX_AGE_S: Final = 600
JSON: Final = "application/json"
PROMETHEUS: Final = "text/plain; version=0.0.4; charset=utf-8"
BASE_HEADERS: Final = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))


class Cors:
    """The allow-list of browser origins (``cors_origins``; ``*`` allows any), for HTTP and the WebSocket."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(origins)

    def allows(self, origin: str) -> bool:
        return self.any or origin in self.origins

    def headers(self, origin: str) -> list[tuple[str, str]]:
        if self.any:
            return [("Access-Control-Allow-Origin", "*")]
        if origin in self.origins:
            return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        return [("Vary", "Origin")]


def route_methods(path: str) -> tuple[str, ...] | None:
    """The methods a path answers (None: no such route)."""
    if path.startswith(HISTORY_PREFIX) and path.endswith(HISTORY_SUFFIX) and len(path) >= 19:
        return READ
    return ROUTES.get(path)


class HttpApi:
    """Routes requests (``handle``) and shapes every refusal (``error_response``) for the HTTP sessions."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        config = app.config
        self.cors = Cors(config.cors_origins)
        self.limits = HttpLimits(max_body_bytes=config.http_max_body_bytes, keepalive_s=config.http_keepalive_s)
        self.sessions: set[HttpSession] = set()
        self.started = time.monotonic()

    # --- responses -------------------------------------------------------------------------------

    def respond(
        self, status: int, body: bytes, content_type: str, request: HttpRequest | None, **extra: str
    ) -> HttpResponse:
        headers = [("Content-Type", content_type), *BASE_HEADERS]
        headers += [(name.replace("_", "-"), value) for name, value in extra.items()]
        if request is not None:
            headers += self.cors.headers(request.header("origin"))
        return HttpResponse(status, body, headers)

    def json(self, status: int, payload: Any, request: HttpRequest | None, **extra: str) -> HttpResponse:
        return self.respond(status, self.app.codec.dumps(payload), JSON, request, **extra)

    def error_response(self, error: HttpError, request: HttpRequest | None) -> HttpResponse:
        body = self.app.codec.dumps({"error": error.message, "status": error.status})
        response = self.respond(error.status, body, JSON, request)
        response.headers += list(error.headers.items())
        response.close = error.close
        return response

    # --- routing ---------------------------------------------------------------------------------

    async def handle(self, request: HttpRequest) -> HttpResponse | Upgrade:
        try:
            return await self.route(request)
        except HttpError as exc:
            return self.error_response(exc, request)

    async def route(self, request: HttpRequest) -> HttpResponse | Upgrade:
        path, method = request.path, request.method
        if request.upgrade and path in WS_PATHS and method == "GET":
            return self.upgrade(request)
        self.app.metrics.chat_http_requests += 1
        if request.upgrade:  # refused: what follows the request is not HTTP, so the connection ends
            if path in WS_PATHS:
                raise HttpError(405, "a WebSocket upgrade is a GET", headers={"Allow": "GET"}, close=True)
            raise HttpError(404, f"no WebSocket at {path}", close=True)
        if method == "OPTIONS":
            return self.options(request, ("GET", "HEAD", "POST") if path == "*" else route_methods(path))
        methods = route_methods(path)
        if methods is None:
            raise HttpError(404, f"no route for {path}")
        if method not in methods:
            raise HttpError(405, f"{method} is not allowed here", headers={"Allow": ", ".join((*methods, "OPTIONS"))})
        if path in WS_PATHS:
            raise HttpError(426, "this path upgrades to a WebSocket", headers={"Upgrade": "websocket"})
        if path == "/healthz":
            return self.health(request)
        if path == "/metrics":
            return self.respond(200, self.app.metrics.render(self.app.gauges()).encode(), PROMETHEUS, request)
        if path == "/auth/token":
            return self.token(request)
        if path == "/auth/login":
            return self.login(request)
        return await self.messages(request)

    def options(self, request: HttpRequest, methods: tuple[str, ...] | None) -> HttpResponse:
        """A CORS preflight (or a plain OPTIONS): 204 with what the path allows; never an auth failure."""
        if methods is None:
            raise HttpError(404, f"no route for {request.path}")
        allow = ", ".join((*methods, "OPTIONS"))
        origin = request.header("origin")
        if not origin or not request.header("access-control-request-method"):
            return self.respond(204, b"", JSON, request, Allow=allow)
        if not self.cors.allows(origin):
            raise HttpError(403, f"origin {origin!r} is not allowed")
        return self.respond(
            204,
            b"",
            JSON,
            request,
            Allow=allow,
            Access_Control_Allow_Methods=allow,
            Access_Control_Allow_Headers=CORS_HEADERS,
            Access_Control_Max_Age=str(CORS_MAX_AGE_S),
        )

    def upgrade(self, request: HttpRequest) -> Upgrade:
        """The checks before a WebSocket upgrade: the browser ``Origin`` (403), then the token (401)."""
        origin = request.header("origin")
        if origin and not self.cors.allows(origin):
            raise HttpError(403, f"origin {origin!r} may not open a WebSocket", close=True)
        params = query_params(request)
        return Upgrade(self.identity(request, params.get("token"), close=True))

    def identity(self, request: HttpRequest, query_token: str | None, *, close: bool = False) -> Identity:
        try:
            return self.app.auth.verify(bearer_token(request.header("authorization"), query_token))
        except AuthError as exc:
            self.app.metrics.chat_auth_failures += 1
            raise HttpError(
                401, reason(exc), headers={"WWW-Authenticate": 'Bearer realm="chat"'}, close=close
            ) from None

    def health(self, request: HttpRequest) -> HttpResponse:
        failure = self.app.history.failure()
        payload = {
            "status": "ok" if failure is None else "degraded",
            "uptimeS": round(time.monotonic() - self.started, 3),
            "preset": self.app.config.preset,
            "connections": len(self.app.hub.clients),
        }
        if self.app.cluster is not None:
            payload.update(worker=self.app.cluster.worker_id, pid=os.getpid())
        if failure is not None:
            payload["reason"] = failure
        return self.json(200 if failure is None else 503, payload, request)

    def token(self, request: HttpRequest) -> HttpResponse:
        try:
            user_id, token = self.app.auth.login_basic(request.header("authorization"))
        except AuthError as exc:
            self.app.metrics.chat_auth_failures += 1
            raise HttpError(401, reason(exc), headers={"WWW-Authenticate": 'Basic realm="chat"'}) from None
        return self.issued(user_id, token, request)

    def login(self, request: HttpRequest) -> HttpResponse:
        """``POST /auth/login`` with ``{"username", "password"}``: the same answer as ``GET /auth/token``."""
        content_type = request.header("content-type").partition(";")[0].strip().lower()
        if content_type != JSON:
            raise HttpError(415, "send the credentials as application/json")
        try:
            body = self.app.codec.loads(request.body.decode("utf-8"))
        except ValueError:
            raise HttpError(400, "the body is not UTF-8 JSON") from None
        user, password = (body.get(key) if isinstance(body, dict) else None for key in ("username", "password"))
        if not isinstance(user, str) or not isinstance(password, str):
            raise HttpError(400, "the body must be {'username': string, 'password': string}")
        try:
            user_id, token = self.app.auth.login(user, password)
        except AuthError as exc:
            self.app.metrics.chat_auth_failures += 1
            raise HttpError(401, reason(exc)) from None
        return self.issued(user_id, token, request)

    def issued(self, user_id: str, token: str, request: HttpRequest) -> HttpResponse:
        return self.json(200, {"token": token, "userId": user_id, "expiresIn": self.app.auth.ttl_s}, request)

    async def messages(self, request: HttpRequest) -> HttpResponse:
        params = query_params(request)
        identity = self.identity(request, params.get("token"))
        try:
            channel_id = unquote(request.path[len(HISTORY_PREFIX) : -len(HISTORY_SUFFIX)], errors="strict")
        except UnicodeDecodeError:
            raise HttpError(400, "the channel id is not UTF-8") from None
        if not channel_id or len(channel_id) > MAX_CHANNEL_ID:
            raise HttpError(400, f"channel id must be 1 to {MAX_CHANNEL_ID} characters")
        if not identity.may_use(channel_id):
            raise HttpError(403, f"channel {channel_id!r} is not open to you")
        before, after, limit = (int_param(params, name) for name in ("before", "after", "limit"))
        if before is not None and after is not None:
            raise HttpError(400, "give 'before' or 'after', not both")
        config = self.app.config
        limit = config.history_page_size if limit is None else min(max(limit, 1), config.history_page_max)
        page = await self.app.history.page(channel_id, before=before, after=after, limit=limit)
        payload = {"channelId": channel_id, "messages": page.messages, "hasMore": page.has_more}
        return self.json(200, payload, request)


def reason(exc: AuthError) -> str:
    return str(exc).removeprefix("HTTP 401: ")


def query_params(request: HttpRequest) -> dict[str, str]:
    """The query's parameters (UTF-8, each at most once, at most ``MAX_QUERY_FIELDS``); 400 otherwise."""
    try:
        parsed = parse_qs(request.query, keep_blank_values=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as exc:
        raise HttpError(400, f"bad query string: {exc}") from None
    for name, values in parsed.items():
        if len(values) > 1:
            raise HttpError(400, f"'{name}' is given {len(values)} times")
    return {name: values[0] for name, values in parsed.items()}


def int_param(params: dict[str, str], name: str) -> int | None:
    """An integer query parameter by the protocol's one rule (``bench.core.integers``); None when
    absent or empty; 400 otherwise."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_digits(raw)
    except ValueError as exc:
        raise HttpError(400, f"'{name}' {exc}") from None

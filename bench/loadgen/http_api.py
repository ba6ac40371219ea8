"""The chat server's HTTP side, for load users: the token endpoint and the history pages.

Each user owns one ``ChatHttp`` (at most one keep-alive connection, as a browser tab has), built on
geventhttpclient so that it yields to other greenlets. Tokens come from one of three sources
(``--auth``): ``login`` asks ``GET /auth/token`` with Basic credentials, ``secret`` mints an HS256 JWT
locally with the server's shared secret (no HTTP round trip, for connection storms), ``none`` sends
no token at all (servers without auth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent.ssl
import orjson
from geventhttpclient import HTTPClient

from bench.core import tokens
from bench.core.dialect import HttpCall
from bench.core.exceptions import AuthError, ClientConnectionError
from bench.loadgen.wire import CHAT_HOOKS, WireHooks
from bench.loadgen.wsclient import insecure_ssl_context

HISTORY_LIMIT = 20  # the seed's page size


@dataclass(slots=True, frozen=True)
class TokenGrant:
    token: str | None
    user_id: str
    expires_in: float


@dataclass(slots=True, frozen=True)
class HistoryPage:
    messages: list[dict[str, Any]]
    has_more: bool


def http_base(url: str) -> str:
    """``http(s)://host:port`` for a target given as http(s):// or ws(s):// URL."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme or "http")
    return f"{scheme}://{parts.netloc}"


class ChatHttp:
    """Token and history requests against one target, over one keep-alive connection."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, insecure: bool = False) -> None:
        self._base = http_base(base_url)
        self._timeout = timeout
        self._insecure = insecure
        self._client: HTTPClient | None = None  # opened on first use, again after close()

    def _tls_context(self, **_: Any) -> gevent.ssl.SSLContext:
        """The same trust as the WebSocket client: the system's (and $SSL_CERT_FILE), or none."""
        return insecure_ssl_context() if self._insecure else gevent.ssl.create_default_context()

    def _get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        return self.send(HttpCall(path=path, headers=headers))

    def send(self, call: HttpCall) -> tuple[int, bytes]:
        """One request a wire described; (status, body)."""
        path = call.path
        if self._client is None:
            self._client = HTTPClient.from_url(
                self._base,
                concurrency=1,
                connection_timeout=self._timeout,
                network_timeout=self._timeout,
                insecure=self._insecure,
                ssl_context_factory=self._tls_context,
            )
        try:
            response = self._client.request(call.method, path, body=call.body or b"", headers=call.headers)
            body = response.read()
        except TimeoutError:
            raise ClientConnectionError("http_timeout", path) from None
        except OSError as exc:
            raise ClientConnectionError("http_error", f"{path}: {exc}") from None
        return response.status_code, body

    def token(self, user: str, password: str) -> TokenGrant:
        """``GET /auth/token`` with Basic credentials; raises AuthError when refused."""
        return self.login(CHAT_HOOKS, user, password)

    def history(
        self,
        channel_id: str,
        token: str | None,
        *,
        before: int | str | None = None,
        after: int | str | None = None,
        limit: int = HISTORY_LIMIT,
    ) -> HistoryPage:
        """One page of ``GET /channels/{id}/messages``, oldest first."""
        return self.history_of(CHAT_HOOKS, channel_id, token, before=before, after=after, limit=limit)

    def login(self, hooks: WireHooks, user: str, password: str) -> TokenGrant:
        """The protocol's login request (``WireHooks.login_call``); AuthError when refused."""
        call = hooks.login_call(user, password)
        if call is None:
            return TokenGrant(None, user, 0.0)
        status, body = self.send(call)
        if status != 200:
            raise AuthError(body[:200].decode(errors="replace"), status=status)
        try:
            data = orjson.loads(body)
        except ValueError:
            raise AuthError("the login answer is not JSON", status=status) from None
        token = hooks.login_token(data)
        if token is None:
            raise AuthError("the login answer holds no token where the protocol says", status=status)
        user_id = data.get("userId", user) if isinstance(data, dict) else user
        return TokenGrant(token, str(user_id), float(data.get("expiresIn", 0)) if isinstance(data, dict) else 0.0)

    def history_of(
        self,
        hooks: WireHooks,
        channel_id: str,
        token: str | None,
        *,
        before: object = None,
        after: object = None,
        limit: int = HISTORY_LIMIT,
    ) -> HistoryPage:
        """One page of history as the protocol asks for it, messages in canonical form."""
        call = hooks.history_call(channel_id, token, before=before, after=after, limit=limit)
        status, body = self.send(call)
        if status != 200:
            raise ClientConnectionError(f"history_http_{status}", body[:200].decode(errors="replace"))
        try:
            messages, has_more = hooks.history_page(orjson.loads(body), limit)
        except ValueError:
            raise ClientConnectionError("history_bad_json", call.path) from None
        return HistoryPage(messages, has_more)

    def close(self) -> None:
        """Close the keep-alive connection (a later request opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()


def get_token(
    http: ChatHttp, mode: str, user: str, *, password: str, secret: str | None, hooks: WireHooks | None = None
) -> TokenGrant:
    """A token for ``user`` by the ``--auth`` mode (``login``: the protocol's login, the chat one by default)."""
    if mode == "login":
        return http.token(user, password) if hooks is None else http.login(hooks, user, password)
    if mode == "secret":
        if not secret:
            raise AuthError("--auth secret needs --jwt-secret")
        return TokenGrant(tokens.mint(user, secret), user, float(tokens.DEFAULT_TTL_S))
    return TokenGrant(None, user, 0.0)

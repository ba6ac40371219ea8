"""The chat server's HTTP side, for load users: the token endpoint and the history pages.

Each user owns one ``ChatHttp`` (at most one keep-alive connection, as a browser tab has), built on
geventhttpclient so that it yields to other greenlets. Tokens come from one of three sources
(``--auth``): ``login`` asks ``GET /auth/token`` with Basic credentials, ``secret`` mints an HS256 JWT
locally with the server's shared secret (no HTTP round trip, for connection storms), ``none`` sends
no token at all (servers without auth).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import gevent.ssl
import orjson
from geventhttpclient import HTTPClient

from bench.core import tokens
from bench.core.exceptions import AuthError, ClientConnectionError
from scenarios.wsclient import insecure_ssl_context

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


def ws_url(host: str, ws_path: str, token: str | None) -> str:
    """The WebSocket URL for Locust's ``--host`` (http(s):// or ws(s)://) and a token."""
    parts = urlsplit(host)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme or "ws")
    url = f"{scheme}://{parts.netloc}{ws_path}?batch=1"  # ask for array frames (docs/PROTOCOL.md §1)
    return url if token is None else f"{url}&token={quote(token, safe='')}"


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
            response = self._client.get(path, headers=headers)
            body = response.read()
        except TimeoutError:
            raise ClientConnectionError("http_timeout", path) from None
        except OSError as exc:
            raise ClientConnectionError("http_error", f"{path}: {exc}") from None
        return response.status_code, body

    def token(self, user: str, password: str) -> TokenGrant:
        """``GET /auth/token`` with Basic credentials; raises AuthError when refused."""
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        status, body = self._get("/auth/token", {"Authorization": f"Basic {basic}"})
        if status != 200:
            raise AuthError(body[:200].decode(errors="replace"), status=status)
        data = orjson.loads(body)
        return TokenGrant(data["token"], str(data.get("userId", user)), float(data.get("expiresIn", 0)))

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
        query = f"limit={limit}"
        if before is not None:
            query += f"&before={before}"
        if after is not None:
            query += f"&after={after}"
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        path = f"/channels/{quote(channel_id, safe='')}/messages?{query}"
        status, body = self._get(path, headers)
        if status != 200:
            raise ClientConnectionError(f"history_http_{status}", body[:200].decode(errors="replace"))
        data = orjson.loads(body)
        return HistoryPage(list(data.get("messages", [])), bool(data.get("hasMore", False)))

    def close(self) -> None:
        """Close the keep-alive connection (a later request opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()


def get_token(http: ChatHttp, mode: str, user: str, *, password: str, secret: str | None) -> TokenGrant:
    """A token for ``user`` by the ``--auth`` mode."""
    if mode == "login":
        return http.token(user, password)
    if mode == "secret":
        if not secret:
            raise AuthError("--auth secret needs --jwt-secret")
        return TokenGrant(tokens.mint(user, secret), user, float(tokens.DEFAULT_TTL_S))
    return TokenGrant(None, user, 0.0)

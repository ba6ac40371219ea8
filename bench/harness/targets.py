"""An external server under test: check the URL, that something answers there, and that auth works.

These checks run before any load so that a wrong URL or password is one clear line, not a run full of
connection errors. A ``ws(s)://HOST:PORT/PATH`` target has no HTTP API to ask: only its port is
probed; a protocol other than ``chat`` logs in its own way: its token endpoint is not probed either.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from typing import Final
from urllib.parse import quote, urlsplit

from bench.core import tokens
from bench.core.exceptions import AuthError, TargetError, UsageError
from bench.core.schema import AUTH_MODES
from bench.harness.locust import AuthSpec

PROBE_USER: Final = "bench-probe"
TIMEOUT_S: Final = 5.0


def normalize_url(url: str) -> str:
    """``http(s)://host:port`` for a target given as http(s):// or ws(s)://, or UsageError."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--target {url!r} must look like http://HOST:PORT or https://HOST:PORT")
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise UsageError(f"--target {url!r} has a bad port") from None
    return f"{scheme}://{parts.netloc}"


def _tls_context(insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _get(url: str, headers: dict[str, str], insecure: bool = False) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=_tls_context(insecure)) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


def check_reachable(base: str, insecure: bool = False) -> int:
    """GET /healthz; any HTTP answer proves a server is there. Returns the status."""
    try:
        return _get(f"{base}/healthz", {}, insecure)[0]
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise TargetError(
                f"certificate refused ({reason.verify_message}); --insecure skips the check for test servers", url=base
            ) from None
        if isinstance(reason, ConnectionRefusedError):
            raise TargetError("connection refused: nothing listens there", url=base) from None
        if isinstance(reason, socket.gaierror):
            raise TargetError("unknown host", url=base) from None
        if isinstance(reason, TimeoutError | socket.timeout):
            raise TargetError(f"no answer within {TIMEOUT_S:g} s", url=base) from None
        raise TargetError(f"unreachable: {reason}", url=base) from None
    except (TimeoutError, OSError) as exc:
        raise TargetError(f"unreachable: {exc}", url=base) from None


def check_auth(base: str, access: AuthSpec) -> str | None:
    """With ``login``, ask the token endpoint once; with ``secret``, mint one. Returns the probe's token."""
    if access.auth not in AUTH_MODES:
        raise UsageError(f"--auth must be one of {', '.join(AUTH_MODES)}")
    if access.auth == "secret" and not access.jwt_secret:
        raise UsageError("--auth secret needs --jwt-secret")
    if access.auth == "secret":
        assert access.jwt_secret is not None
        return tokens.mint(PROBE_USER, access.jwt_secret, ttl_s=300)
    if access.auth != "login":
        return None
    basic = base64.b64encode(f"{PROBE_USER}:{access.password}".encode()).decode("ascii")
    try:
        status, body = _get(f"{base}/auth/token", {"Authorization": f"Basic {basic}"}, access.insecure)
    except (urllib.error.URLError, OSError) as exc:
        raise TargetError(f"token endpoint unreachable: {exc}", url=base) from None
    if status in (401, 403):
        raise AuthError("the target refused the login; pass the right --password, or --auth secret|none", status=status)
    if status == 404:
        raise AuthError("the target has no /auth/token endpoint; use --auth secret or --auth none", status=status)
    if status != 200:
        raise AuthError("the token endpoint failed", status=status)
    try:
        token = json.loads(body)["token"]
    except (ValueError, KeyError, TypeError):
        raise AuthError("the token endpoint answered without a token", status=status) from None
    return str(token)


CHAT_WS_PATH: Final = "/ws"  # the chat protocol's, when --ws-path leaves it to the protocol


def check_websocket(base: str, access: AuthSpec, token: str | None) -> None:
    """One WebSocket upgrade at ``--ws-path``: a target that does not answer 101 is no chat server."""
    parts = urlsplit(base)
    ws_path = access.ws_path or CHAT_WS_PATH
    path = ws_path + ("" if token is None else f"?token={quote(token, safe='')}")
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode("ascii"),
    }
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.netloc, timeout=TIMEOUT_S, context=_tls_context(access.insecure))
    else:
        conn = http.client.HTTPConnection(parts.netloc, timeout=TIMEOUT_S)
    try:
        conn.request("GET", path, headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        raise TargetError(f"WebSocket upgrade at {ws_path} failed: {exc}", url=base) from None
    finally:
        conn.close()
    if status == 101:
        return
    if status in (401, 403):
        if token is None:
            raise AuthError(f"{ws_path} wants a token; use --auth login or --auth secret", status=status)
        raise AuthError(f"{ws_path} refused the token; check --auth, --password or --jwt-secret", status=status)
    raise TargetError(
        f"HTTP {status} to a WebSocket upgrade at {ws_path}: not a chat server there (--ws-path sets the path)",
        url=base,
    )


def is_websocket_url(url: str) -> bool:
    return urlsplit(url).scheme in ("ws", "wss")


def ws_path_of(url: str) -> str | None:
    """The path of a ``ws(s)://`` target (None for http(s):// or no path), its query kept."""
    parts = urlsplit(url)
    if not is_websocket_url(url) or parts.path in ("", "/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def check_port(base: str) -> None:
    """A TCP connection to the target's port: something listens there."""
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=TIMEOUT_S).close()
    except ConnectionRefusedError:
        raise TargetError("connection refused: nothing listens there", url=base) from None
    except socket.gaierror:
        raise TargetError("unknown host", url=base) from None
    except OSError as exc:
        raise TargetError(f"unreachable: {exc}", url=base) from None


def check_target(url: str, access: AuthSpec) -> str:
    """All the pre-flight checks that apply; returns the normalized base URL."""
    base = normalize_url(url)
    if is_websocket_url(url):
        check_port(base)
        return base
    check_reachable(base, access.insecure)
    if access.protocol != "chat":
        return base
    token = check_auth(base, access)
    check_websocket(base, access, token)
    return base

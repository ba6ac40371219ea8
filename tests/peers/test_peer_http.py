"""The peers' HTTP matches the bundled server's: 405 with Allow, CORS and preflights, POST /auth/login,
keep-alive, the integer rule (picows cannot read request bodies or keep a connection: those are skipped)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.utils import TIMEOUT, RunningServer, basic_auth, http_json
from tests.utils.peers import token_for


def connection(peer: RunningServer) -> http.client.HTTPConnection:
    parts = urlsplit(peer.url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT)


def exchange(
    peer: RunningServer, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    conn = connection(peer)
    try:
        conn.request(method, path, body or None, headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def is_picows(peer: RunningServer) -> bool:
    return "(peer picows)" in peer.banner


PICOWS_GET_ONLY = "picows answers 400 to every method but GET and to any body, before the peer sees them"


def test_wrong_method_is_405_with_allow(peer: RunningServer) -> None:
    status, headers, _ = exchange(peer, "GET", "/auth/login", {})
    assert status == 405 and headers["allow"] == "POST, OPTIONS"
    if is_picows(peer):
        pytest.skip(PICOWS_GET_ONLY)
    status, headers, _ = exchange(peer, "POST", "/auth/token", basic_auth("m"))
    assert status == 405 and headers["allow"] == "GET, OPTIONS"
    status, headers, _ = exchange(peer, "DELETE", "/healthz", {})
    assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS"


def test_cors_preflight_and_allow_origin(peer: RunningServer) -> None:
    status, headers, _ = exchange(peer, "GET", "/healthz", {"Origin": "https://app.example"})
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    if is_picows(peer):
        pytest.skip(PICOWS_GET_ONLY)
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    status, headers, _ = exchange(peer, "OPTIONS", "/auth/login", preflight)
    assert status == 204 and headers["access-control-allow-origin"] == "*"
    assert "Authorization" in headers["access-control-allow-headers"]
    assert "POST" in headers["access-control-allow-methods"]
    assert int(headers["access-control-max-age"]) > 0


def test_post_login_and_keepalive(peer: RunningServer) -> None:
    if is_picows(peer):
        pytest.skip(PICOWS_GET_ONLY + "; and it closes after every plain HTTP response")
    conn = connection(peer)
    body = json.dumps({"username": "poster", "password": "bench"}).encode()
    conn.request("POST", "/auth/login", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    login = json.loads(response.read())
    assert response.status == 200 and login["userId"] == "poster" and login["token"]
    sock = conn.sock
    conn.request("POST", "/auth/login", body.replace(b"bench", b"wrong"), {"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 401 and json.loads(response.read())["status"] == 401
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200 and conn.sock is sock
    conn.close()


@pytest.mark.parametrize("value", ["+5", "%205", "5_0", "%EF%BC%95", "9223372036854775808"])
def test_history_integers_follow_the_one_rule(peer: RunningServer, value: str) -> None:
    token = token_for(peer, "ints")
    status, _ = http_json(f"{peer.url}/channels/c/messages?before={value}", {"Authorization": f"Bearer {token}"})
    assert status == 400

"""The HTTP/1.1 layer: keep-alive, pipelining, bodies, POST /auth/login, methods, CORS, bounds."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.utils import TIMEOUT, RunningServer, basic_auth, fetch_token, start_server
from tests.utils.chat_client import metric
from tests.utils.hostile import connect as raw_connect
from tests.utils.hostile import exchange, parse_replies, read_until_closed, request

ALLOWED = "https://app.example"


@pytest.fixture(scope="module")
def strict_cors() -> Iterator[RunningServer]:
    with start_server("default", f'cors_origins=["{ALLOWED}"]', "http_keepalive_s=0.5") as running:
        yield running


def keepalive(server: RunningServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)


def login_body(user: str, password: str = "bench") -> bytes:
    return json.dumps({"username": user, "password": password}).encode()


def test_one_connection_serves_login_history_and_health(server: RunningServer) -> None:
    conn = keepalive(server)
    conn.request("POST", "/auth/login", login_body("kept"), {"Content-Type": "application/json"})
    response = conn.getresponse()
    login = json.loads(response.read())
    assert response.status == 200 and response.getheader("Connection") is None
    assert login["userId"] == "kept" and login["expiresIn"] == 3600 and login["token"]
    sock = conn.sock
    for _ in range(3):
        conn.request("GET", "/channels/kept/messages?limit=5", headers={"Authorization": f"Bearer {login['token']}"})
        page = conn.getresponse()
        assert page.status == 200 and json.loads(page.read()) == {"channelId": "kept", "messages": [], "hasMore": False}
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    assert conn.sock is sock  # never reconnected
    conn.close()


def test_login_refusals(server: RunningServer) -> None:
    json_type = {"Content-Type": "application/json"}
    failures = metric(server, "chat_auth_failures_total")
    cases = [
        (request("POST", "/auth/login", json_type, login_body("x", "wrong")), 401),
        (request("POST", "/auth/login", json_type, b"{not json"), 400),
        (request("POST", "/auth/login", json_type, b'{"username": "x"}'), 400),
        (request("POST", "/auth/login", json_type, b'{"username": "x", "password": NaN}'), 400),
        (request("POST", "/auth/login", {"Content-Type": "text/plain"}, login_body("x")), 415),
        (request("POST", "/auth/login", json_type, login_body("x").decode().encode("utf-16")), 400),
    ]
    replies = exchange(server, b"".join(data for data, _ in cases), expect=len(cases))
    assert [reply.status for reply in replies] == [status for _, status in cases]
    assert all(json.loads(reply.body)["status"] == reply.status for reply in replies)
    assert metric(server, "chat_auth_failures_total") == failures + 1
    assert fetch_token(server.url, "still-works")


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("POST", "/auth/token", "GET, OPTIONS"),
        ("GET", "/auth/login", "POST, OPTIONS"),
        ("DELETE", "/healthz", "GET, HEAD, OPTIONS"),
        ("PUT", "/channels/general/messages", "GET, HEAD, OPTIONS"),
    ],
)
def test_wrong_method_is_405_with_allow(server: RunningServer, method: str, target: str, allow: str) -> None:
    (reply,) = exchange(server, request(method, target, basic_auth("m")), expect=1)
    assert reply.status == 405 and reply.headers["allow"] == allow


def test_pipelined_requests_and_bodies_are_answered_in_order(server: RunningServer) -> None:
    token = fetch_token(server.url, "pipe")
    data = (
        request("GET", "/healthz")
        + request("GET", "/healthz", body=b"ignored body")
        + request("GET", "/channels/p/messages", {"Authorization": f"Bearer {token}"})
        + request("GET", "/nowhere")
        + request("GET", "/auth/token", {**basic_auth("pipe"), "Connection": "close"})
        + request("GET", "/healthz")  # after Connection: close: never answered
    )
    replies = exchange(server, data, expect=6)
    assert [reply.status for reply in replies] == [200, 200, 200, 404, 200]
    assert replies[4].headers["connection"] == "close"


def test_head_has_the_length_but_no_body(server: RunningServer) -> None:
    with raw_connect(server) as sock:
        sock.sendall(request("HEAD", "/metrics", {"Connection": "close"}))
        head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 0" not in head and body == b""


def test_a_half_closed_client_gets_every_answer(server: RunningServer) -> None:
    with raw_connect(server) as sock:
        sock.sendall(request("GET", "/healthz") * 3)
        sock.shutdown(socket.SHUT_WR)
        replies = parse_replies(read_until_closed(sock))
    assert [reply.status for reply in replies] == [200, 200, 200]


def test_many_pipelined_requests_in_one_write(server: RunningServer) -> None:
    count = 300  # far more than the pipeline bound: reading pauses, nothing is lost
    replies = exchange(server, request("GET", "/healthz") * count, expect=count, timeout=3 * TIMEOUT)
    assert len(replies) == count and {reply.status for reply in replies} == {200}


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
        (request("POST", "/auth/login", {"Content-Type": "application/json"}, b"x" * (64 * 1024 + 1)), 413),
        (b"POST /auth/login HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (request("GET", "/healthz", {f"X-Filler-{n}": "y" * 100 for n in range(200)}), 431),
        (request("GET", "/healthz?" + "a" * 9000), 414),
        (request("GET", "/channels/c/messages?before=1&before=2", basic_auth("q")), 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS hello on the plain port
    ],
    ids=["lowercase", "two-lengths", "smuggling", "big-body", "huge-length", "big-head", "long-target", "dup", "tls"],
)
def test_malformed_or_oversize_requests_get_a_clear_status(server: RunningServer, data: bytes, status: int) -> None:
    replies = exchange(server, data, expect=1)
    assert [reply.status for reply in replies] == [status]
    assert json.loads(replies[0].body)["status"] == status


def test_basic_with_raw_latin1_is_401_not_500(server: RunningServer) -> None:
    (reply,) = exchange(server, b"GET /auth/token HTTP/1.1\r\nAuthorization: Basic \xe9\xe9\xe9\xe9\r\n\r\n", expect=1)
    assert reply.status == 401


def test_idle_keepalive_is_closed_and_a_half_request_gets_408(strict_cors: RunningServer) -> None:
    with raw_connect(strict_cors) as sock:
        sock.sendall(request("GET", "/healthz"))
        started = time.monotonic()
        replies = parse_replies(read_until_closed(sock))
        assert [reply.status for reply in replies] == [200]
        assert 0.4 < time.monotonic() - started < TIMEOUT
    with raw_connect(strict_cors) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow")
        assert [reply.status for reply in parse_replies(read_until_closed(sock))] == [408]


def test_cors_everywhere_by_default_and_preflight_is_not_an_auth_failure(server: RunningServer) -> None:
    failures = metric(server, "chat_auth_failures_total")
    origin = {"Origin": "https://any.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    replies = exchange(
        server,
        request("OPTIONS", "/auth/login", preflight)
        + request("OPTIONS", "/channels/x/messages", {**preflight, "Access-Control-Request-Method": "GET"})
        + request("GET", "/channels/x/messages", origin)
        + request("GET", "/healthz", origin),
        expect=4,
    )
    assert [reply.status for reply in replies] == [204, 204, 401, 200]
    assert all(reply.headers["access-control-allow-origin"] == "*" for reply in replies)
    for reply, method in zip(replies[:2], ("POST", "GET"), strict=True):
        assert "Authorization" in reply.headers["access-control-allow-headers"]
        assert "Content-Type" in reply.headers["access-control-allow-headers"]
        assert method in reply.headers["access-control-allow-methods"]
        assert int(reply.headers["access-control-max-age"]) > 0
    assert metric(server, "chat_auth_failures_total") == failures + 1  # the GET without a token only


def upgrade_status(server: RunningServer, headers: dict[str, str]) -> int:
    token = fetch_token(server.url, "origin")

    async def attempt() -> int:
        try:
            async with connect(f"{server.ws_url}?token={token}", additional_headers=headers, open_timeout=TIMEOUT):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(attempt())


def test_allow_list_applies_to_cors_and_websocket_origin(strict_cors: RunningServer) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    good, evil = exchange(
        strict_cors,
        request("OPTIONS", "/auth/login", {"Origin": ALLOWED, **preflight})
        + request("OPTIONS", "/auth/login", {"Origin": "https://evil.example", **preflight}),
        expect=2,
    )
    assert good.status == 204 and good.headers["access-control-allow-origin"] == ALLOWED
    assert evil.status == 403 and "access-control-allow-origin" not in evil.headers
    assert upgrade_status(strict_cors, {"Origin": ALLOWED}) == 101
    assert upgrade_status(strict_cors, {}) == 101  # no Origin: not a browser
    assert upgrade_status(strict_cors, {"Origin": "https://evil.example"}) == 403
    assert upgrade_status(strict_cors, {"Origin": "null"}) == 403


def test_shutdown_closes_idle_keepalive_connections_at_once() -> None:
    with start_server("default", "http_keepalive_s=30") as server, raw_connect(server) as sock:
        sock.sendall(request("GET", "/healthz"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert server.stop() == 0
        assert read_until_closed(sock) == b""
        assert time.monotonic() - started < TIMEOUT


def test_expect_100_continue(server: RunningServer) -> None:
    body = json.dumps({"username": "cont", "password": "bench"}).encode()
    head = request("POST", "/auth/login", {"Content-Type": "application/json", "Expect": "100-continue"}, body)
    with raw_connect(server) as sock:
        sock.sendall(head[: -len(body)])
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body + request("GET", "/healthz", {"Connection": "close"}))
        assert [reply.status for reply in parse_replies(read_until_closed(sock))] == [200, 200]
    big = request("POST", "/auth/login", {"Expect": "100-continue", "Content-Length": "999999"})
    assert [reply.status for reply in exchange(server, big, expect=1)] == [413]

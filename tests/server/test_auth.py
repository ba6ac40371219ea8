"""Authentication and channel access: tokens on upgrade and on history, the users file, the channel rule."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bench.core import protocol
from bench.core.exceptions import AuthError
from server_under_test.auth import Authenticator
from server_under_test.config import DEFAULT_JWT_SECRET
from tests.utils import TIMEOUT, RunningServer, basic_auth, http_get, start_server
from tests.utils.chat_client import chat_client, metric, now_ms

MINT = Authenticator(secret=DEFAULT_JWT_SECRET, password="bench", ttl_s=60)


def upgrade_status(server: RunningServer, query: str) -> int:
    async def attempt() -> int:
        try:
            async with connect(f"{server.ws_url}{query}", open_timeout=TIMEOUT):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(attempt())


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?token=",
        "?token=not-a-jwt",
        "?token=" + Authenticator(secret="someone-elses-secret-of-enough-length", password="", ttl_s=60).mint("eve"),
        "?token=" + MINT.mint("late", ttl_s=-5),
    ],
    ids=["missing", "empty", "garbage", "forged", "expired"],
)
def test_bad_tokens_are_refused_before_the_upgrade(server: RunningServer, query: str) -> None:
    before = metric(server, "chat_auth_failures_total")
    assert upgrade_status(server, query) == 401
    assert metric(server, "chat_auth_failures_total") == before + 1


def test_a_minted_token_with_the_shared_secret_is_accepted(server: RunningServer) -> None:
    assert upgrade_status(server, f"?token={MINT.mint('minted')}") == 101


def test_wrong_password_gets_401_json(server: RunningServer) -> None:
    status, body = http_get(f"{server.url}/auth/token", headers=basic_auth("alice", "wrong"))
    assert status == 401
    assert "error" in json.loads(body)
    status, _ = http_get(f"{server.url}/auth/token")
    assert status == 401


def test_history_needs_a_valid_token(server: RunningServer) -> None:
    url = f"{server.url}/channels/general/messages"
    assert http_get(url)[0] == 401
    assert http_get(url, headers={"Authorization": "Bearer " + MINT.mint("x", ttl_s=-5)})[0] == 401
    assert http_get(url, headers={"Authorization": "Bearer " + MINT.mint("x")})[0] == 200


def test_dm_channels_are_only_for_their_two_users(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "ann") as ann, chat_client(server, "mallory") as mallory:
            await ann.subscribe("dm:ann:ben")
            error = await mallory.error(protocol.subscribe("dm:ann:ben", now_ms()))
            assert error["code"] == protocol.FORBIDDEN
            error = await mallory.error(protocol.publish("dm:ann:ben", "hi", now_ms(), "x"))
            assert error["code"] == protocol.FORBIDDEN

    asyncio.run(scenario())
    url = f"{server.url}/channels/dm:ann:ben/messages"
    assert http_get(url, headers={"Authorization": "Bearer " + MINT.mint("mallory")})[0] == 403
    assert http_get(url, headers={"Authorization": "Bearer " + MINT.mint("ben")})[0] == 200


def test_channels_claim_restricts_subscribe_publish_and_paging(server: RunningServer) -> None:
    token = MINT.mint("limited", channels=("team-*",))

    async def scenario() -> None:
        async with chat_client(server, "limited", token=token) as limited:
            await limited.subscribe("team-red")
            error = await limited.error(protocol.subscribe("general", now_ms()))
            assert error["code"] == protocol.FORBIDDEN

    asyncio.run(scenario())
    assert http_get(f"{server.url}/channels/general/messages", headers={"Authorization": f"Bearer {token}"})[0] == 403
    assert http_get(f"{server.url}/channels/team-red/messages", headers={"Authorization": f"Bearer {token}"})[0] == 200


@pytest.fixture(scope="module")
def users_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    users = Path(tmp_path_factory.mktemp("users")) / "users.toml"
    users.write_text('[users.zoe]\npassword = "s3cret"\nchannels = ["ops-*"]\n\n[users.yan]\npassword = "pw"\n')
    with start_server("default", f"users_file={users}") as running:
        yield running


def test_users_file_replaces_the_shared_password(users_server: RunningServer) -> None:
    assert http_get(f"{users_server.url}/auth/token", headers=basic_auth("zoe", "bench"))[0] == 401
    assert http_get(f"{users_server.url}/auth/token", headers=basic_auth("nobody", "bench"))[0] == 401
    assert http_get(f"{users_server.url}/auth/token", headers=basic_auth("yan", "pw"))[0] == 200
    status, body = http_get(f"{users_server.url}/auth/token", headers=basic_auth("zoe", "s3cret"))
    assert status == 200
    token = json.loads(body)["token"]
    restricted = f"{users_server.url}/channels/general/messages"
    assert http_get(restricted, headers={"Authorization": f"Bearer {token}"})[0] == 403


def test_repeated_headers_are_refused_cleanly(server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"GET /auth/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\nAuthorization: Basic Yzpk\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 401 ")
    assert "Traceback" not in server.log_text()


def test_a_remembered_token_still_expires() -> None:
    auth = Authenticator(secret=DEFAULT_JWT_SECRET, password="bench", ttl_s=60)
    token = auth.mint("brief", ttl_s=1)
    assert auth.verify(token).user_id == "brief"
    assert auth.verify(token).user_id == "brief"  # from the cache
    time.sleep(1.1)
    with pytest.raises(AuthError, match="expired"):
        auth.verify(token)
    with pytest.raises(AuthError):
        auth.verify(token[:-2] + "xx")

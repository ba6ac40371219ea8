"""Start the real chat server as a subprocess on port 0, read its address back, stop it with SIGTERM.

    with start_server("naive", "rate_limit_per_s=5") as srv:
        token = fetch_token(srv.url, "alice")
        ... websockets.connect(srv.ws_url + "?token=" + token) ...

Used by the server tests, the scenario tests and the CLI tests alike.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from server_under_test.process import ServerProcess

TIMEOUT: Final = float(os.environ.get("BENCH_TEST_TIMEOUT_FACTOR", "1")) * 5.0
"""The one timeout unit of the test suite (seconds), scaled by BENCH_TEST_TIMEOUT_FACTOR."""

REPO: Final = Path(__file__).resolve().parent.parent
DEFAULT_PASSWORD: Final = "bench"


class RunningServer(ServerProcess):
    """A server subprocess (see server_under_test.process) plus the TLS context clients should use."""

    ssl_context: ssl.SSLContext | None = None

    def stop(self, timeout: float | None = None) -> int:
        return super().stop(timeout or 3 * TIMEOUT)


@contextlib.contextmanager
def start_server(
    preset: str | None = "default",
    *sets: str,
    ssl_context: ssl.SSLContext | None = None,
    env: dict[str, str] | None = None,
    port: int = 0,
    startup_timeout: float | None = None,
) -> Iterator[RunningServer]:
    """Run ``python -m server_under_test --port 0 --config PRESET --set ...`` for the ``with`` block;
    SIGTERM (graceful shutdown) at the end."""
    server = RunningServer(preset, sets, port=port, env=env, cwd=REPO, startup_timeout=startup_timeout or 4 * TIMEOUT)
    server.ssl_context = ssl_context
    with server:
        yield server


def http_get(
    url: str, *, headers: dict[str, str] | None = None, ssl_context: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    """GET a URL; (status, body) for every status, errors included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2 * TIMEOUT, context=ssl_context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def basic_auth(user: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def fetch_token(
    base_url: str, user: str, password: str = DEFAULT_PASSWORD, *, ssl_context: ssl.SSLContext | None = None
) -> str:
    """A JWT from ``GET /auth/token`` (raises AssertionError on anything but 200)."""
    status, body = http_get(f"{base_url}/auth/token", headers=basic_auth(user, password), ssl_context=ssl_context)
    assert status == 200, (status, body)
    token = json.loads(body)["token"]
    assert isinstance(token, str)
    return token

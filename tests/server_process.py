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
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

TIMEOUT: Final = float(os.environ.get("BENCH_TEST_TIMEOUT_FACTOR", "1")) * 5.0
"""The one timeout unit of the test suite (seconds), scaled by BENCH_TEST_TIMEOUT_FACTOR."""

LISTENING: Final = re.compile(r"listening on (https?://\S+)")
REPO: Final = Path(__file__).resolve().parent.parent
DEFAULT_PASSWORD: Final = "bench"


@dataclass
class RunningServer:
    """A server subprocess and where it listens."""

    url: str  # http://127.0.0.1:PORT or https://...
    process: subprocess.Popen[bytes]
    banner: str
    stderr_path: Path
    ssl_context: ssl.SSLContext | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM, then wait; kills after the timeout. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout or 3 * TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(TIMEOUT)


def server_command(preset: str | None, sets: Sequence[str], host: str = "127.0.0.1", port: int = 0) -> list[str]:
    command = [sys.executable, "-m", "server_under_test", "--host", host, "--port", str(port)]
    if preset:
        command += ["--config", preset]
    for item in sets:
        command += ["--set", item]
    return command


def _read_banner(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line, or '' if the process printed none within the timeout."""
    assert process.stdout is not None
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return line[0].decode(errors="replace").strip() if line else ""


@contextlib.contextmanager
def start_server(
    preset: str | None = "default",
    *sets: str,
    ssl_context: ssl.SSLContext | None = None,
    env: dict[str, str] | None = None,
    port: int = 0,
    startup_timeout: float | None = None,
) -> Iterator[RunningServer]:
    """Run ``python -m server_under_test --port 0 --config PRESET --set ...`` for the ``with`` block."""
    with tempfile.NamedTemporaryFile(prefix="chat-server-", suffix=".log", delete=False) as log:
        stderr_path = Path(log.name)
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            server_command(preset, sets, port=port),
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )
    try:
        banner = _read_banner(process, startup_timeout or 4 * TIMEOUT)
        found = LISTENING.search(banner)
        if found is None:
            process.kill()
            process.wait(TIMEOUT)
            raise RuntimeError(f"server did not start: {banner!r}\n{stderr_path.read_text(errors='replace')}")
        server = RunningServer(found.group(1), process, banner, stderr_path, ssl_context)
        try:
            yield server
        finally:
            server.stop()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
        stderr_path.unlink(missing_ok=True)


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

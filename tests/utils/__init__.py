"""The test suite's helpers, in one place: the real server on port 0, HTTP, Locust and ``bench`` runs.

    with start_server("naive", "rate_limit_per_s=5") as srv:
        token = fetch_token(srv.url, "alice")
        ... websockets.connect(srv.ws_url + "?token=" + token) ...

Servers start through the tool's own launcher (``bench.harness.servers``) and Locust through its own
(``bench.harness.locust``), so the tests exercise the code users run. ``TIMEOUT`` is the one timeout
unit, scaled by ``BENCH_TEST_TIMEOUT_FACTOR``. Submodules: ``chat_client`` (an asyncio protocol
client), ``peers`` (the peer servers), ``relay`` (a fault-injecting proxy), ``sample`` (result documents).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import itertools
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from bench.core.schema import TIMEOUT_FACTOR_ENV
from bench.harness.locust import AuthSpec, LoadSpec, LocustProcess
from bench.harness.servers import ManagedServer, ServerSpec
from bench.report import run as report
from bench.report.htmlkit import fmt

TIMEOUT: Final = float(os.environ.get(TIMEOUT_FACTOR_ENV, "1")) * 5.0
"""The one timeout unit of the test suite (seconds), scaled by BENCH_TEST_TIMEOUT_FACTOR."""

REPO: Final = Path(__file__).resolve().parents[2]
DEFAULT_PASSWORD: Final = "bench"


class RunningServer(ManagedServer):
    """A server started for a test, plus what its clients need: the TLS context and the ``--set`` items."""

    ssl_context: ssl.SSLContext | None = None
    placement: Iterator[int] = itertools.count()  # chat_client's round robin over a cluster's workers

    @property
    def sets(self) -> tuple[str, ...]:
        return self.spec.overrides

    @property
    def workers(self) -> int:
        """How many workers the banner announced (1 for a single process)."""
        match = re.search(r"(\d+) workers", self.banner)
        return int(match[1]) if match else 1


HAVE_REDIS: Final = shutil.which("redis-server") is not None
needs_redis: Final = pytest.mark.skipif(
    not HAVE_REDIS, reason="cluster mode needs redis-server (apt-get install redis-server)"
)
SERVER_MODES: Final[dict[str, tuple[str, ...]]] = {
    "single": ("default",),
    "cluster": ("cluster", "workers=2"),  # a private redis-server (redis_url = "auto")
}


@contextlib.contextmanager
def start_server(
    preset: str | None = "default",
    *sets: str,
    ssl_context: ssl.SSLContext | None = None,
    env: dict[str, str] | None = None,
    port: int = 0,
    startup_timeout: float | None = None,
    spec: ServerSpec | None = None,
    cpus: tuple[int, ...] = (),
) -> Iterator[RunningServer]:
    """The bundled server (``--config PRESET --set ...``), or any ``spec`` (a peer), for the ``with``
    block; SIGTERM (graceful shutdown) at the end."""
    spec = spec or ServerSpec(config=preset or "default", overrides=sets)
    with tempfile.TemporaryDirectory(prefix="chat-test-") as tmp:
        server = RunningServer(
            spec,
            Path(tmp) / "server.log",
            port=port,
            env=env,
            start_timeout_s=startup_timeout or 4 * TIMEOUT,
            cpus=cpus,
        )
        server.ssl_context = ssl_context
        server.start()
        try:
            yield server
        finally:
            server.stop(3 * TIMEOUT)


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


def http_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """GET and decode JSON: (status, body), also for error statuses."""
    status, body = http_get(url, headers=headers)
    return status, json.loads(body or b"null")


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


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_site(directory: Path | None = None) -> Iterator[str]:
    """A plain web server (``python -m http.server``) on a port of its own, serving ``directory`` (default:
    the current one) from a thread; yields its origin ``http://127.0.0.1:PORT``. It upgrades nothing."""
    handler = functools.partial(_QuietHandler, directory=str(directory) if directory else None)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()


# --- Locust and bench runs, reports ---------------------------------------------------------------------------


@dataclass
class LocustRun:
    result: dict[str, Any]
    live: list[dict[str, Any]]
    output: str
    returncode: int


def run_scenario(
    scenario: str,
    host: str,
    *,
    users: int,
    seconds: int,
    args: tuple[str, ...] = (),
    processes: int = 0,
    env: dict[str, str] | None = None,
) -> LocustRun:
    """``locust -f scenarios/<scenario>.py --headless`` through the tool's Locust launcher."""
    load = LoadSpec(scenario, users, users, seconds, max(1, processes))
    with tempfile.TemporaryDirectory(prefix="chatbench-locust-") as tmp:
        locust = LocustProcess(
            load, AuthSpec(), host, Path(tmp), extra_args=("--stop-timeout", "0", "--loglevel", "INFO", *args), env=env
        )
        locust.start()
        code = locust.wait(seconds + 12 * TIMEOUT)
        output = locust.log_path.read_text(errors="replace")
        result = locust.metrics()
        assert result is not None, output[-4000:]
        live = (
            [json.loads(line) for line in locust.live_path.read_text().splitlines()]
            if locust.live_path.exists()
            else []
        )
    return LocustRun(result, live, output, -1 if code is None else code)


# A publish load small enough for seconds-long runs on a busy 2-core machine.
TINY_PUBLISH = ["--param", "channels=1", "--param", "subscribers_per_channel=4", "--param", "publishers=1",
                "--param", "rate=20", "-r", "50"]  # fmt: skip


def bench(*args: str, timeout: float = 30 * TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` from the repository root; output captured."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.rglob("result.json"))


def read_result(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "result.json").read_text())
    return data


def assert_self_contained(html: str) -> None:
    """Nothing is fetched: no script, stylesheet, image or font from anywhere."""
    assert not re.search(r"<(script|link|img|iframe)\b", html, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "@import" not in html and not re.search(r"url\((?!#)", html)


def assert_matches_result(html: str, result: dict[str, Any]) -> None:
    """Every latency percentile and throughput figure of result.json appears in the page."""
    for name, stats in result["latency_ms"].items():
        if not stats["count"]:
            continue
        row = re.search(rf"<tr><td>{re.escape(name)}</td>(.*?)</tr>", html)
        assert row, name
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))
        expected = [fmt(stats[key]) for key, _ in report.PERCENTILE_COLUMNS]
        assert cells == expected, name
    for key in ("published", "delivered", "lost", "delivered_per_s"):
        assert f"<td>{fmt(result['throughput'][key])}</td>" in html, key
    for verdict in result["slo"]["verdicts"]:
        assert verdict["expr"].replace("<", "&lt;").replace(">", "&gt;") in html


def server_command(preset: str | None, sets: list[str] | tuple[str, ...], *, port: int = 0) -> list[str]:
    """The argv the launcher would run, for tests that watch the process fail on its own."""
    return ServerSpec(config=preset or "default", overrides=tuple(sets)).command("127.0.0.1", port)

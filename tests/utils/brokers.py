"""Real servers of other ecosystems for the adapter tests: RabbitMQ (Web STOMP, Web MQTT) and a Socket.IO app.

    with start_rabbitmq() as rabbit:      # about 10-15 s; skips the test when rabbitmq-server is missing
        ... rabbit.stomp_url, rabbit.mqtt_url (ws://127.0.0.1:PORT/ws), user and password "guest" ...
    with start_socketio_chat() as url:    # skips when node or `npm ci --prefix tests/servers/socketio_chat` is missing
        ...

Each RabbitMQ is a node of its own: its node name, a config file with every listener (AMQP, STOMP,
MQTT, Web STOMP, Web MQTT) on a free loopback port and nothing else, its own data and log directories,
its own Erlang distribution port and its own epmd on a free port (ERL_EPMD_PORT: not the machine's
4369, which another node may own), and HOME in the temporary directory (the Erlang cookie is created
there, so /var/lib/rabbitmq's permissions and the caller's HOME never matter). ``rabbitmqctl stop``
ends it, then its epmd is told to quit.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from bench.harness.locust import free_port
from tests.utils import REPO, TIMEOUT

RABBITMQ_BIN: Final = Path("/usr/lib/rabbitmq/bin")  # Debian's; /usr/sbin's wrapper would switch to the rabbitmq user
RABBITMQ_USER: Final = "guest"  # allowed from loopback only, which is where the tests connect from
PLUGINS: Final = "[rabbitmq_web_stomp,rabbitmq_web_mqtt]."
SOCKETIO_APP: Final = REPO / "tests" / "servers" / "socketio_chat"


@dataclass(frozen=True)
class RabbitMQ:
    stomp_url: str
    mqtt_url: str
    user: str = RABBITMQ_USER
    password: str = RABBITMQ_USER


def _wait_for(proc: subprocess.Popen[bytes], log: Path, pattern: str, what: str, timeout: float) -> str:
    """The first match of ``pattern`` in ``log``; fails the test if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.search(pattern, text)
        if found:
            return found.group(0)
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"{what} did not start within {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(grace)


@contextlib.contextmanager
def start_rabbitmq() -> Iterator[RabbitMQ]:
    """A RabbitMQ node of its own with Web STOMP and Web MQTT on free ports, for the ``with`` block."""
    server = RABBITMQ_BIN / "rabbitmq-server"
    if not server.exists():
        pytest.skip("rabbitmq-server not installed (apt-get install rabbitmq-server; .ci/run does)")
    with tempfile.TemporaryDirectory(prefix="chatbench-rabbit-") as tmp:
        base = Path(tmp)
        ports = {name: free_port() for name in ("amqp", "stomp", "mqtt", "web_stomp", "web_mqtt", "dist", "epmd")}
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{ports['amqp']}\n"
            f"stomp.listeners.tcp.default = 127.0.0.1:{ports['stomp']}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{ports['mqtt']}\n"
            f"web_stomp.tcp.ip = 127.0.0.1\nweb_stomp.tcp.port = {ports['web_stomp']}\n"
            f"web_mqtt.tcp.ip = 127.0.0.1\nweb_mqtt.tcp.port = {ports['web_mqtt']}\n"
            "loopback_users.guest = true\n"
        )
        (base / "enabled_plugins").write_text(PLUGINS)
        env = {
            **os.environ,
            "HOME": tmp,
            "RABBITMQ_NODENAME": f"chatbench-{os.getpid()}-{ports['dist']}@localhost",
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_LOGS": "-",  # to stdout, read below for readiness
            "RABBITMQ_DIST_PORT": str(ports["dist"]),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_PORT": str(ports["epmd"]),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        log = base / "rabbit.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(server)], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        try:
            _wait_for(proc, log, r"Server startup complete", "rabbitmq-server", 12 * TIMEOUT)
            yield RabbitMQ(
                stomp_url=f"ws://127.0.0.1:{ports['web_stomp']}/ws", mqtt_url=f"ws://127.0.0.1:{ports['web_mqtt']}/ws"
            )
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    [str(RABBITMQ_BIN / "rabbitmqctl"), "stop"], env=env, capture_output=True, timeout=6 * TIMEOUT
                )
            _stop(proc, 2 * TIMEOUT)
            epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    [epmd, "-port", str(ports["epmd"]), "-kill"], env=env, capture_output=True, timeout=TIMEOUT
                )


@contextlib.contextmanager
def start_socketio_chat(ping_interval_ms: int = 25000, ping_timeout_ms: int = 20000) -> Iterator[str]:
    """``tests/servers/socketio_chat`` (the socket.io library) on a free port: its http:// URL. A client
    that does not answer a ping within ``ping_timeout_ms`` of it is disconnected."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed (the socketio adapter tests run against the socket.io npm package)")
    if not (SOCKETIO_APP / "node_modules" / "socket.io").is_dir():
        pytest.skip(f"socket.io not installed: npm ci --prefix {SOCKETIO_APP.relative_to(REPO)}")
    with tempfile.TemporaryDirectory(prefix="chatbench-sio-") as tmp:
        log = Path(tmp) / "server.log"
        command = [node, "server.js", "--port", "0", "--ping-interval-ms", str(ping_interval_ms),
                   "--ping-timeout-ms", str(ping_timeout_ms)]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, cwd=SOCKETIO_APP, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        try:
            address = _wait_for(proc, log, r"listening on [\d.]+:\d+", "the socket.io chat", 4 * TIMEOUT)
            yield "http://" + address.removeprefix("listening on ")
        finally:
            _stop(proc, 2 * TIMEOUT)

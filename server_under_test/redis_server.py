"""The private ``redis-server`` of ``redis_url = "auto"``: started from PATH for the server's lifetime on a
port of its own on 127.0.0.1, no persistence, in a temporary directory; restarted on the same port if it
dies (the broker reconnects); stopped at exit."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

from bench.core.exceptions import ConfigError

logger = logging.getLogger("server_under_test")

INSTALL_HINT: Final = "apt-get install redis-server"
START_TIMEOUT_S: Final = 10.0
PUBSUB_BUFFER_LIMIT: Final = "pubsub 256mb 64mb 60"  # a subscriber this far behind is cut (and reconnects)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis answers PING on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """One redis-server child process; ``url`` once started."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> str:
        """Start it and wait for PING; raises ConfigError naming the package when redis-server is missing."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError(
                f'redis_url = "auto" needs redis-server on PATH ({INSTALL_HINT}), or set redis_url', key="redis_url"
            )
        self._dir = self._dir or tempfile.TemporaryDirectory(prefix="chat-redis-")
        self.port = self.port or free_port(self.host)
        argv = [binary, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        argv += ["--dir", self._dir.name, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"]
        argv += ["--client-output-buffer-limit", PUBSUB_BUFFER_LIMIT]
        log = Path(self._dir.name, "redis.log").open("ab")  # noqa: SIM115 - the child keeps it
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ping(self.host, self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = Path(self._dir.name, "redis.log").read_text(errors="replace").strip().splitlines()[-1:]
                self.stop()
                raise ConfigError(f"the private redis-server did not start: {' '.join(tail)}", key="redis_url")
            time.sleep(0.02)
        return self.url

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def restart_if_dead(self) -> bool:
        """Start it again on the same port when it has died; True when it did."""
        if self._proc is None or self.alive():
            return False
        logger.warning("the private redis-server exited (code %s); restarting it", self._proc.returncode)
        self.restarts += 1
        try:
            self.start()
        except ConfigError as exc:
            logger.error("%s", exc)
            return False
        return True

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

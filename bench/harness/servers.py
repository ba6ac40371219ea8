"""Starting, watching, restarting and stopping the server under test (bundled or peer) as a child process.

The server prints ``chat server listening on http://HOST:PORT (preset NAME)`` as its first line; its
whole output goes to a log file in the run directory, which we read back for that line and, when it
dies, for the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.core.exceptions import ConfigError, ServerDiedError, TargetError
from bench.harness.affinity import CpuSet, pin
from server_under_test.peers.settings import PeerSettings

READY_LINE: Final = re.compile(r"listening on (?P<url>https?://\S+)")
START_TIMEOUT_S: Final = 20.0
STOP_TIMEOUT_S: Final = 15.0
LOG_TAIL_LINES: Final = 3


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A server configuration, validated: a bundled preset or TOML file plus ``--set`` overrides, or a
    peer server (``peer:NAME``) that speaks the same protocol."""

    config: str
    overrides: tuple[str, ...] = ()
    described: dict[str, Any] = field(default_factory=dict)
    password: str = ""
    jwt_secret: str = ""
    peer_settings: PeerSettings | None = None  # a peer's own settings (default: PeerSettings())

    @property
    def is_peer(self) -> bool:
        from server_under_test.peers import is_peer_name

        return is_peer_name(self.config)

    @property
    def label(self) -> str:
        name = Path(self.config).stem if self.config.endswith(".toml") else self.config
        return name + "".join(f",{item}" for item in self.overrides)

    def command(self, host: str, port: int) -> list[str]:
        """The argv that starts this server listening on ``host:port``."""
        if self.is_peer:
            from server_under_test.peers import get_peer

            settings = dataclasses.replace(self.peer_settings or PeerSettings(), host=host, port=port)
            return get_peer(self.config).command(settings)
        cmd = [sys.executable, "-m", "server_under_test", "--host", host, "--port", str(port)]
        cmd += ["--config", self.config]
        for item in self.overrides:
            cmd += ["--set", item]
        return cmd


def _peer_spec(name: str, overrides: list[str] | tuple[str, ...]) -> ServerSpec:
    from server_under_test.peers import get_peer

    peer = get_peer(name)
    if overrides:
        raise ConfigError(f"--set applies to bundled presets, not to the peer {name!r}", key="set")
    peer.check_installed()
    settings = PeerSettings()
    described = {"peer": peer.name, "description": peer.description, **dataclasses.asdict(settings)}
    described.update(password="***", jwt_secret="***")
    return ServerSpec(config=name, described=described, password=settings.password, jwt_secret=settings.jwt_secret)


def resolve_spec(config: str, overrides: list[str] | tuple[str, ...] = ()) -> ServerSpec:
    """Validate a config up front so that a bad preset or ``--set`` is one clear line, not a dead child."""
    from server_under_test.config import describe, load_config
    from server_under_test.peers import is_peer_name

    if is_peer_name(config):
        return _peer_spec(config, overrides)
    if config.endswith(".toml") and Path(config).is_file():
        config = str(Path(config).resolve())
    loaded = load_config(config, list(overrides))
    if loaded.tls_cert:
        raise ConfigError("bench runs against the bundled server over plain http; use --target for TLS", key="tls_cert")
    return ServerSpec(
        config=config,
        overrides=tuple(overrides),
        described=describe(loaded),
        password=loaded.password,
        jwt_secret=loaded.jwt_secret,
    )


def check_port_free(host: str, port: int) -> None:
    """Raise TargetError when ``host:port`` cannot be bound (port 0 always can)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is fine
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TargetError(f"port {port} on {host} is already in use") from None
            raise TargetError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


class ManagedServer:
    """One server child process (bundled or peer); ``start`` blocks until it listens and returns its URL."""

    def __init__(
        self,
        spec: ServerSpec,
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        env: dict[str, str] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        cpus: CpuSet = (),
    ) -> None:
        self.spec = spec
        self.host = host
        self.port = port
        self.log_path = log_path
        self.env = env or {}
        self.start_timeout_s = start_timeout_s
        self.cpus = cpus
        self.url = ""
        self.banner = ""  # the line that announced the address
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        check_port_free(self.host, self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.spec.command(self.host, self.port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True,
                preexec_fn=pin(self.cpus),
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            match = READY_LINE.search(self._read_log(offset))
            if match:
                start = self._read_log(offset).rfind("\n", 0, match.start()) + 1
                self.banner = self._read_log(offset)[start:].split("\n", 1)[0].strip()
                self.url = match["url"].rstrip("/")
                self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
                return self.url
            if self._proc.poll() is not None:
                raise self._start_failure(offset)
            time.sleep(0.05)
        self.stop()
        raise TargetError(
            f"server did not report its address within {self.start_timeout_s:.0f} s (log: {self.log_path})"
        )

    def _read_log(self, offset: int = 0) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, offset: int = 0) -> str:
        lines = [line.strip() for line in self._read_log(offset).splitlines() if line.strip()]
        return " | ".join(lines[-LOG_TAIL_LINES:])

    def _start_failure(self, offset: int) -> TargetError:
        log = self._read_log(offset)
        if "address already in use" in log.lower() or "errno 98" in log.lower():
            return TargetError(f"port {self.port} on {self.host} is already in use")
        return TargetError(f"server exited at start: {self.log_tail(offset) or 'no output'}")

    def log_text(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self._read_log()

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint (``ws://HOST:PORT/ws``)."""
        return self.url.replace("http", "ws", 1) + "/ws"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def send_signal(self, signum: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        """The exit code once the server exits within ``timeout``, else None."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def poll(self) -> int | None:
        """The exit code if the server has stopped, else None."""
        return None if self._proc is None else self._proc.poll()

    def check_alive(self) -> None:
        code = self.poll()
        if code is not None:
            raise ServerDiedError(
                f"bundled server exited with code {code} mid-run: {self.log_tail() or 'no output'}",
                url=self.url,
                returncode=code,
            )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (graceful: shutdown notice, close 1012), then SIGKILL after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def restart(self) -> str:
        """Stop gracefully and start again on the same port (the reconnect-storm ``restart`` mode)."""
        self.stop()
        self.restarts += 1
        deadline = time.monotonic() + 5.0
        while True:
            try:
                return self.start()
            except TargetError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


class ExternalServer:
    """A server someone else runs (``--target``), behind the same interface: started and stopped by them."""

    def __init__(self, url: str, check: Callable[[], str]) -> None:
        self.url = url
        self.restarts = 0
        self._check = check

    def start(self) -> str:
        """Check that the target answers (and logs in); its normalised base URL."""
        self.url = self._check()
        return self.url

    def check_alive(self) -> None:
        """Nothing to watch: a target that goes away shows as connection errors in the run."""

    def stop(self) -> None:
        """Not ours to stop."""

    def restart(self) -> str:
        raise TargetError("an external target cannot be restarted by bench (storm_mode=restart)", url=self.url)


@contextlib.contextmanager
def running(spec: ServerSpec) -> Iterator[ManagedServer]:
    """A bundled or peer server on a free port for the ``with`` block, its log in a temporary directory."""
    with (
        tempfile.TemporaryDirectory(prefix="chat-server-") as tmp,
        ManagedServer(spec, Path(tmp) / "server.log") as server,
    ):
        yield server

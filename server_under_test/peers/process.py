"""Run a chat server (bundled preset or peer) as a child process and read its address back.

Every server in this project prints ``chat server listening on http://HOST:PORT ...`` as its first
line; :class:`ServerProcess` starts one on port 0, waits for that line and stops it with SIGTERM
(the graceful path), killing it only if it outlives the timeout.
"""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Final

from bench.exceptions import TargetError
from server_under_test.peers import get_peer, is_peer_name
from server_under_test.peers.settings import PeerSettings

LISTENING: Final = re.compile(r"listening on (https?://\S+)")


def server_command(server: str, host: str = "127.0.0.1", port: int = 0) -> list[str]:
    """The argv for ``default``/``naive``/any preset of the bundled server, or ``peer:NAME``."""
    if is_peer_name(server):
        peer = get_peer(server)
        peer.check_installed()
        return peer.command(PeerSettings(host=host, port=port))
    return [sys.executable, "-m", "server_under_test", "--host", host, "--port", str(port), "--config", server]


class ServerProcess:
    """A server child process; ``url`` is its http:// base once :meth:`start` returned."""

    def __init__(self, argv: list[str], *, start_timeout: float = 15.0, stop_timeout: float = 10.0) -> None:
        self.argv = argv
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.stderr: IO[str] | None = None
        self.url = ""
        self.first_line = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    def start(self) -> ServerProcess:
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (a file, not a pipe: never blocks; closed in stop)
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=self.stderr, text=True, start_new_session=True
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(self.start_timeout):
                self.stop()
                raise TargetError(f"{' '.join(self.argv)} printed nothing in {self.start_timeout:g} s")
        self.first_line = self.proc.stdout.readline().strip()
        match = LISTENING.search(self.first_line)
        if match is None:
            err = self.stop()
            raise TargetError(f"{' '.join(self.argv)} did not start: {self.first_line or err.strip()[-2000:]}")
        self.url = match[1]
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # drain the rest
        return self

    def stop(self) -> str:
        """SIGTERM, wait up to the stop timeout (then SIGKILL); return what it wrote to stderr."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        text = self.stderr_text()
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None
        return text

    def stderr_text(self) -> str:
        if self.stderr is None:
            return ""
        self.stderr.seek(0)
        return self.stderr.read()

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once it exits within ``timeout`` seconds, else None."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return code
            time.sleep(0.02)
        return None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

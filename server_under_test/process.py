"""Run the server as a subprocess on a free port and read its address from the first stdout line.

The tests, ``python -m server_under_test.loadcheck`` and the ``bench`` CLI all start it this way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench.core.exceptions import ServerDiedError, TargetError

LISTENING: Final = re.compile(r"listening on (https?://\S+)")


def server_command(preset: str | None, sets: Sequence[str], *, host: str = "127.0.0.1", port: int = 0) -> list[str]:
    """``python -m server_under_test --host H --port P [--config PRESET] [--set K=V ...]``."""
    command = [sys.executable, "-m", "server_under_test", "--host", host, "--port", str(port)]
    if preset:
        command += ["--config", preset]
    for item in sets:
        command += ["--set", item]
    return command


class ServerProcess:
    """A started server: ``url`` (http:// or https://), ``banner``, ``stderr()`` and ``stop()``."""

    def __init__(
        self,
        preset: str | None = "default",
        sets: Sequence[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.preset = preset
        self.sets = tuple(sets)
        with tempfile.NamedTemporaryFile(prefix="chat-server-", suffix=".log", delete=False) as log:
            self.stderr_path = Path(log.name)
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                server_command(preset, sets, host=host, port=port),
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=cwd,
                env={**os.environ, **(env or {})},
            )
        self.banner = self._read_banner(startup_timeout)
        found = LISTENING.search(self.banner)
        if found is None:
            self.kill()
            raise ServerDiedError(
                f"server did not start (exit {self.process.returncode}): {self.stderr().strip() or self.banner!r}",
                returncode=self.process.returncode,
            )
        self.url = found.group(1)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _read_banner(self, timeout: float) -> str:
        stdout = self.process.stdout
        assert stdout is not None
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line:
            self.kill()
            raise TargetError(f"server printed no address within {timeout:.0f}s")
        return line[0].decode(errors="replace").strip()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait (the graceful shutdown); kill after ``timeout``. The exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code

    def close(self) -> None:
        """Stop the server if it still runs and remove its log."""
        if self.process.poll() is None:
            self.stop()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Run a scenario with the real Locust (a subprocess, headless) and read back its result file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.server_process import REPO, TIMEOUT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    """``locust -f scenarios/<scenario>.py --headless`` with BENCH_METRICS_OUT / BENCH_LIVE_OUT set."""
    with tempfile.TemporaryDirectory(prefix="chatbench-locust-") as tmp:
        result_path, live_path = Path(tmp) / "result.json", Path(tmp) / "live.jsonl"
        command = [
            sys.executable, "-m", "locust", "-f", str(REPO / "scenarios" / f"{scenario}.py"), "--host", host,
            "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary",
            "--stop-timeout", "0", *args,
        ]  # fmt: skip
        if processes:  # a free master port: Locust's fixed 5557 would mix concurrent runs
            port = free_port()
            command += ["--processes", str(processes), "--master-bind-port", str(port), "--master-port", str(port)]
        outputs = {"BENCH_METRICS_OUT": str(result_path), "BENCH_LIVE_OUT": str(live_path)}
        completed = subprocess.run(
            command,
            cwd=tmp,
            env={**os.environ, **(env or {}), **outputs},
            capture_output=True,
            text=True,
            timeout=seconds + 12 * TIMEOUT,
        )
        output = completed.stdout + completed.stderr
        assert result_path.exists(), output[-4000:]
        result = json.loads(result_path.read_text())
        live = [json.loads(line) for line in live_path.read_text().splitlines()] if live_path.exists() else []
    return LocustRun(result, live, output, completed.returncode)

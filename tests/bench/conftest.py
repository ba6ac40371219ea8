"""Helpers for the CLI tests: run ``python -m bench`` for real, with tiny loads and short durations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.server_process import REPO, TIMEOUT

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

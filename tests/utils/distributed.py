"""A distributed ``bench run --expect-workers N`` with its ``bench worker`` processes, as subprocesses.

    run, workers = run_distributed(["run", "publish", ...], [None, None], master="127.0.0.1:5557")

One worker per entry of ``wraps``: None runs it here, a function (``Namespace.command``) rewrites its
argv to run elsewhere. Every process is bounded in time and none outlives the call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.utils import REPO, TIMEOUT

Wrap = Callable[[list[str]], list[str]]


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def _start(argv: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float) -> Finished:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # Ctrl-C: bench stops its own children, then writes what it has
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=6 * TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    return Finished(proc.returncode, out, err)


def run_distributed(
    run_args: Sequence[str],
    wraps: Sequence[Wrap | None],
    *,
    master: str,
    scenarios: Sequence[str] = (),
    timeout: float = 30 * TIMEOUT,
) -> tuple[Finished, list[Finished]]:
    """``bench RUN_ARGS`` (a master) and one ``bench worker --master MASTER SCENARIO`` per ``wraps``
    (worker i runs ``scenarios[i]``, default publish)."""
    run = _start([sys.executable, "-m", "bench", *run_args])
    workers = []
    for i, wrap in enumerate(wraps):
        scenario = scenarios[i] if i < len(scenarios) else "publish"
        argv = [sys.executable, "-m", "bench", "worker", "--master", master, scenario, "--timeout", str(4 * TIMEOUT)]
        workers.append(_start(wrap(argv) if wrap else argv))
    finished = _finish(run, timeout)
    return finished, [_finish(worker, 4 * TIMEOUT) for worker in workers]

"""``bench worker``: one Locust worker process for a master that ``bench run --expect-workers`` started.

The worker names the same scenario as the master (its locustfile defines the user classes and the
options); everything else (target URL, users, parameters, auth) arrives from the master with Locust's
spawn message, which carries the master's parsed options. The worker first checks that the master's
port answers (TargetError after ``connect_timeout_s``), then runs until the master quits it.
"""

from __future__ import annotations

import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rich.console import Console

from bench.core.exceptions import BenchError, TargetError, UsageError
from bench.harness.locust import WORKER_TIMEOUT_S, Endpoint, LocustProcess, scenario_file

PROBE_INTERVAL_S: Final = 0.5
POLL_S: Final = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRequest:
    """What ``bench worker`` was asked to do."""

    master: Endpoint
    scenario: str = "publish"
    processes: int = 1  # Locust worker processes on this machine (each counts towards --expect-workers)
    connect_timeout_s: float = WORKER_TIMEOUT_S
    log_dir: Path | None = None  # where locust.log goes (default: a temporary directory, printed on failure)


def wait_for_master(master: Endpoint, timeout_s: float) -> None:
    """Until a TCP connection to the master's port succeeds; TargetError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((master.host, master.port), timeout=min(5.0, timeout_s)):
                return
        except OSError as exc:
            if time.monotonic() + PROBE_INTERVAL_S > deadline:
                raise TargetError(
                    f"cannot reach the Locust master at {master} within {timeout_s:g} s ({exc.strerror or exc}); "
                    "is `bench run --expect-workers N` running there, and is its --master-bind reachable from here?"
                ) from None
        time.sleep(PROBE_INTERVAL_S)


def run_worker(request: WorkerRequest, console: Console) -> int:
    """Run one worker until the master stops it: 0; UsageError if the master runs another scenario,
    BenchError if the worker failed."""
    scenario_file(request.scenario)  # a UsageError before waiting for anyone
    wait_for_master(request.master, request.connect_timeout_s)
    with tempfile.TemporaryDirectory(prefix="chatbench-worker-") as tmp:
        work_dir = request.log_dir or Path(tmp)
        locust = LocustProcess.worker(request.scenario, request.master, work_dir, processes=request.processes)
        locust.start()
        console.print(f"{request.scenario} worker: the master at {request.master} answers; running its users "
                      f"until it stops the run (log: {locust.log_path})")  # fmt: skip
        try:
            while locust.poll() is None:
                time.sleep(POLL_S)
        finally:
            code = locust.stop()
        if code and (refused := locust.refusals()):
            raise UsageError(refused[0].replace("HOST:PORT", str(request.master)))
        if code:
            raise BenchError(f"the Locust worker exited with code {code}: {locust.log_tail() or 'no output'}")
    console.print(f"the master at {request.master} stopped the run; worker done")
    return 0

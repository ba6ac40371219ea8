"""``bench worker``: a Locust worker for a ``bench run --expect-workers N`` master, on any machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.exits import console
from bench.cli.options import duration_s
from bench.harness import locust
from bench.harness.worker import WorkerRequest, run_worker

DESCRIPTION = """\
Run the users of a distributed run: connect to the Locust master that `bench run SCENARIO
--expect-workers N` started, run the users it dispatches, and exit 0 when it stops the run.
Name the same SCENARIO as the master; the target, users and --param values come from the master.
Exit 3 if the master cannot be reached within --timeout, 4 if the worker fails."""


def cmd_worker(args: argparse.Namespace) -> int:
    request = WorkerRequest(
        master=locust.parse_endpoint(args.master),
        scenario=args.scenario,
        processes=args.processes,
        connect_timeout_s=args.timeout,
        log_dir=args.log_dir,
    )
    return run_worker(request, console())


def add(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="a Locust worker for a `bench run --expect-workers N` master (distributed load)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", nargs="?", default="publish", help="the master's scenario (default publish)")
    p.add_argument("--master", required=True, metavar="HOST:PORT", help="the master's address (port default 5557)")
    p.add_argument("--processes", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument(
        "--timeout",
        type=duration_s,
        default=locust.WORKER_TIMEOUT_S,
        metavar="SECONDS",
        help=f"give up if the master does not answer by then (default {locust.WORKER_TIMEOUT_S:g})",
    )
    p.add_argument("--log-dir", type=Path, default=None, help="keep the worker's locust.log here (default: temporary)")
    p.set_defaults(func=cmd_worker)

"""``bench perf``: the README's performance benchmark (capacity, cost, client efficiency, memory)."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.cli.exits import EXIT_OK, EXIT_SLO_FAILED, console
from bench.core.exceptions import UsageError
from bench.harness import perf
from bench.report.perf_report import console_tables


def add(sub: Any) -> None:
    p = sub.add_parser(
        "perf",
        help="the performance benchmark: capacity, client efficiency and memory, with target ratios",
        description=perf.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="a small, fast run of every part (smoke test)")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        choices=perf.PARTS,
        help="run only this part (repeatable; default: all five)",
    )
    p.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="PRESET|peer:NAME",
        help=f"configs for capacity and server memory (repeatable; default: {', '.join(perf.SERVERS)})",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=None,
        help="Locust processes for capacity (default 2; pinned: 1 per core)",
    )
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="seconds per capacity step")
    p.add_argument("--start", type=float, default=None, help="first publish rate per publisher (msg/s)")
    p.add_argument("--max-steps", type=int, default=None, help="capacity steps before giving up raising")
    p.add_argument("--conns", type=int, default=None, help="idle connections for the memory part (default 5000)")
    p.add_argument("--server-cpus", default=None, metavar="CPUS", help="cores of the servers (default: the first)")
    p.add_argument("--loadgen-cpus", default=None, metavar="CPUS", help="cores of Locust (default: the others)")
    p.add_argument("--no-pin", action="store_true", help="leave servers and Locust free to run on any core")
    p.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="where reports go")
    p.add_argument("--quiet", action="store_true", help="no live progress of the capacity runs")
    p.set_defaults(func=command)


def plan_of(args: argparse.Namespace) -> perf.Plan:
    plan = perf.QUICK if args.quick else perf.FULL
    changes = {
        key: value
        for key, value in (
            ("processes", args.processes),
            ("step_s", args.duration),
            ("start_rate", args.start),
            ("max_steps", args.max_steps),
            ("conns", args.conns),
        )
        if value is not None
    }
    plan = replace(plan, **changes)
    if plan.processes < 1 or plan.step_s <= 0 or plan.start_rate <= 0 or plan.max_steps < 1 or plan.conns < 1:
        raise UsageError("--processes, --duration, --start, --max-steps and --conns must be positive")
    return plan


def command(args: argparse.Namespace) -> int:
    out = console()
    wide = Console(highlight=False, width=max(out.width, 150))  # the tables are the product: never wrapped
    plan = plan_of(args)
    parts = [part for part in perf.PARTS if part in args.only] if args.only else list(perf.PARTS)
    servers = list(dict.fromkeys(args.server)) or list(perf.SERVERS)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir: Path = args.out / f"perf-{stamp}"
    command = shlex.join(["bench", *args.argv])
    pins = perf.pins_for(args.server_cpus, args.loadgen_cpus, pin=not args.no_pin)
    if args.processes is None:
        plan = perf.fit_processes(plan, pins)
    described = pins.describe()
    if described["pinned"]:
        out.print(f"pinned: servers on cores {described['server_cpus']}, Locust on {described['loadgen_cpus']}")
    report = perf.run(
        plan, parts, servers, out_dir, quiet=args.quiet, command=command, quick=args.quick, console=out, pins=pins
    )
    for table in console_tables(report):
        wide.print(table)
    out.print(f"perf: {out_dir / perf.PERF_HTML}", highlight=False, soft_wrap=True)
    missed = [r for r in report["ratios"] if r["met"] is False]
    return EXIT_SLO_FAILED if missed else EXIT_OK

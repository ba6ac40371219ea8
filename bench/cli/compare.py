"""``bench compare``: existing runs side by side, or one scenario run on several configs."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench.cli.exits import EXIT_INTERRUPTED, EXIT_LOADGEN, EXIT_OK, EXIT_SLO_FAILED, console
from bench.cli.options import add_load_options, add_output_options, add_server_options, many_requests
from bench.core.exceptions import ResultError, UsageError
from bench.harness import compare
from bench.report import comparison as render
from bench.results import comparison

DESCRIPTION: Final = """\
Compare runs side by side, saying for each metric whether the difference is significant.

  bench compare reports/RUN_A reports/RUN_B          existing runs (a directory of runs = repeats)
  bench compare publish --server naive --server default --repeat 3
                                                     run the scenario on each config, interleaved

Writes comparison.html (and comparison.json) and prints a table of ratios to the first input."""


def add(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs, or one scenario across server configs",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="RUN_DIR|SCENARIO",
        help="run directories (or result.json files) to compare, or one scenario name to run",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=compare.DEFAULT_REPEAT,
        help=f"runs per config when running a scenario (default {compare.DEFAULT_REPEAT})",
    )
    add_server_options(p, many=compare.DEFAULT_SERVERS)
    add_load_options(p)
    add_output_options(p)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    out = console()
    paths = [Path(p) for p in args.inputs]
    if all(p.exists() for p in paths):
        if args.server or args.target:
            raise UsageError("--server and --target run a scenario; do not mix them with run directories")
        groups = [group for p in paths for group in comparison.load_groups(p)]
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out_dir = args.out / f"compare-{stamp}"
        interrupted = False
    elif len(paths) == 1 and "/" not in args.inputs[0] and not args.inputs[0].endswith(".json"):
        if len(args.inputs) > 1:
            raise UsageError("give one scenario to run, or only run directories to compare")
        if args.repeat < 1:
            raise UsageError("--repeat must be at least 1")
        requests = many_requests(args, args.inputs[0], compare.DEFAULT_SERVERS)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out_dir = args.out / f"compare-{stamp}-{requests[0].load.scenario}"
        groups, interrupted = compare.run_configs(requests, args.repeat, out_dir, out)
        if interrupted and len(groups) < 2:
            print(f"bench compare: interrupted before two configs ran; the runs are in {out_dir}", file=sys.stderr)
            return EXIT_INTERRUPTED
    else:
        missing = next(p for p in paths if not p.exists())
        raise ResultError(f"{missing}: no such run directory or result.json")
    if len(groups) < 2:
        raise UsageError("compare needs at least two runs or configs")
    comparison.unique_labels(groups)
    rows = comparison.compare_groups(groups)
    path = render.write_outputs(groups, rows, out_dir)
    out.print(render.console_table(groups, rows))
    if differences := comparison.load_differences(groups):
        out.print(f"[yellow]warning[/]: the runs offered unlike loads ({'; '.join(differences)})", highlight=False)
    out.print(f"comparison: {path}", highlight=False, soft_wrap=True)
    every = [r for g in groups for r in g.results]
    if interrupted:
        print("bench compare: interrupted; the comparison covers the runs that finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    if any(r.get("status") != "ok" for r in every):
        return EXIT_LOADGEN
    if any((r.get("slo") or {}).get("passed") is False for r in every):
        return EXIT_SLO_FAILED
    return EXIT_OK

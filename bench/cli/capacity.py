"""``bench capacity``: the highest offered load that holds the objectives, per config."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any, Final

from bench.cli.exits import EXIT_INTERRUPTED, EXIT_OK, EXIT_SLO_FAILED, console
from bench.cli.options import add_load_options, add_output_options, add_server_options, many_requests
from bench.harness import capacity

DESCRIPTION: Final = """\
Raise the offered load step by step until an --slo or zero loss breaks; report the highest load
that held for each --server config (the websocket-shootout method).

  bench capacity publish --slo 'fanout.p99<50ms' --server naive --server default
  bench capacity publish --step-param rate --start 5 --factor 2 --max-steps 6

Each step runs --duration seconds (default 15). "users" steps Locust's user count; any other name
steps that scenario parameter (--param NAME=VALUE). A step where the load generator saturated does
not count as held: the limit measured must be the server's."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("steps")
    group.add_argument(
        "--step-param",
        default=None,
        metavar="NAME",
        help="what to raise: 'users' or a scenario parameter such as 'rate' "
        "(default: rate for publish and reconnect_storm, users otherwise)",
    )
    group.add_argument("--start", type=float, default=None, help="first value (default: the scenario's)")
    group.add_argument("--factor", type=float, default=2.0, help="multiply the value by this per step (default 2)")
    group.add_argument("--max-steps", type=int, default=6, help="give up raising after this many steps (default 6)")
    group.add_argument(
        "--refine",
        type=int,
        default=1,
        help="bisection steps between the last that held and the first that broke (default 1)",
    )
    group.add_argument(
        "--confirm",
        type=int,
        default=0,
        metavar="N",
        help="run a step that broke up to N more times; it holds if any try held (a shared machine's "
        "one noisy second should not end the search; default 0)",
    )
    group.add_argument("--allow-loss", action="store_true", help="do not require lost==0")


def add(sub: Any) -> None:
    p = sub.add_parser(
        "capacity",
        help="raise the offered load until an SLO or zero loss breaks",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", help="the scenario to step (publish and reconnect_storm step --param rate)")
    add_arguments(p)
    add_server_options(p, many=capacity.DEFAULT_SERVERS)
    add_load_options(p, duration_help="seconds per step, or 30s / 2m (default 15)")
    add_output_options(p)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    slos = list(args.slo)
    if not args.allow_loss and capacity.ZERO_LOSS not in [s.replace(" ", "") for s in slos]:
        args.slo = slos = [*slos, capacity.ZERO_LOSS]
    if args.duration is None:
        args.duration = capacity.DEFAULT_STEP_DURATION_S
    requests = many_requests(args, args.scenario, capacity.DEFAULT_SERVERS)
    plan = capacity.Plan(
        step_param=args.step_param or capacity.default_step_param(requests[0].load.scenario),
        start=args.start,
        factor=args.factor,
        max_steps=args.max_steps,
        refine=args.refine,
        confirm=args.confirm,
    )
    plan.check()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = args.out / f"capacity-{stamp}-{requests[0].load.scenario}"
    rows, _, interrupted = capacity.run(requests, plan, slos, out_dir, console())
    if interrupted:
        print("bench capacity: interrupted; the steps that ran are in the table", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if all(row["highest_held"] is not None for row in rows) else EXIT_SLO_FAILED

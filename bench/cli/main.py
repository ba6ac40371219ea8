"""bench: load tests and benchmarks for real-time WebSocket chat servers.

Run a scenario against the bundled server or your own, compare server configs with repeats and
significance, search the capacity at an SLO, and render self-contained HTML reports.

Exit codes:
    0  ok (and every --slo held)
    1  an --slo failed (the run itself went fine)
    2  usage or configuration error (unknown scenario or preset, bad --set, bad --slo, bad result file)
    3  target or server error (port in use, unreachable target, refused login, server died mid-run)
    4  the load generator failed (Locust crashed or wrote no metrics, fewer --expect-workers arrived)
  130  interrupted (Ctrl-C); the partial result is still written
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from bench.cli import capacity, compare, perf, worker
from bench.cli.exits import (
    EXIT_INTERRUPTED,
    EXIT_LOADGEN,
    EXIT_OK,
    EXIT_SLO_FAILED,
    EXIT_TARGET,
    EXIT_USAGE,
    console,
    exit_code_of,
)
from bench.cli.options import add_load_options, add_output_options, add_server_options, one_request
from bench.core.exceptions import (
    AuthError,
    BenchError,
    ConfigError,
    ResultError,
    ServerDiedError,
    TargetError,
    UsageError,
)
from bench.harness import locust, runner
from bench.report import run as report
from bench.report import summary
from bench.results import run as results

Command = Callable[[argparse.Namespace], int]


def cmd_run(args: argparse.Namespace) -> int:
    request = one_request(args, args.scenario)
    out = console()
    if warning := request.load.ramp_warning():
        out.print(f"[yellow]warning[/]: {warning}", highlight=False)
    result, run_dir = runner.execute(request, out)
    summary.print_run(out, result, str(run_dir / results.REPORT_FILE))
    code = exit_code_of(result)
    if result.get("status") != "ok":  # the one line on stderr that CI logs show; the partial result is written
        reason = " ".join(str(result.get("failure")).split())
        print(f"bench run: failed: {reason} (partial result: {run_dir / results.RESULT_FILE})", file=sys.stderr)
    elif code == EXIT_SLO_FAILED:
        failed = [v["expr"] for v in (result.get("slo") or {}).get("verdicts", []) if not v["passed"]]
        print(f"bench run: SLO failed: {', '.join(failed)} (see {run_dir / results.REPORT_FILE})", file=sys.stderr)
    return code


def cmd_report(args: argparse.Namespace) -> int:
    result = results.load(args.result)
    source = results.resolve(args.result)
    path = args.output or source.with_name(results.REPORT_FILE)
    report.write(result, path)
    print(path)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from server_under_test.cli import serve_from_args

    return serve_from_args(args)


def _add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run one scenario and write result.json + report.html",
        description="Run one scenario against the bundled server or an external target.",
    )
    p.add_argument("scenario", help=f"one of {', '.join(locust.SCENARIOS)}, or a locustfile path")
    p.add_argument("--label", default=None, help="a name for this run in reports (default: the server config)")
    add_server_options(p)
    add_load_options(p)
    add_output_options(p)
    p.set_defaults(func=cmd_run)


def _add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="render report.html from a result.json",
        description="Render the HTML report of a run from its result.json alone.",
    )
    p.add_argument("result", type=Path, help="a result.json or a run directory")
    p.add_argument("-o", "--output", type=Path, default=None, help="where to write (default: beside result.json)")
    p.set_defaults(func=cmd_report)


def _add_serve(sub: Any) -> None:
    from server_under_test.cli import add_arguments

    p = sub.add_parser(
        "serve",
        help="run the bundled chat server in the foreground",
        description="The bundled chat server, as python -m server_under_test.",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_serve)


SUBCOMMANDS: Final = [_add_run, compare.add, capacity.add, _add_report, _add_serve, perf.add, worker.add]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )  # the module docstring is the user's help; the code is one function per subcommand
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for adder in SUBCOMMANDS:
        adder(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    func: Command = args.func
    try:
        return func(args)
    except (UsageError, ConfigError, ResultError) as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (TargetError, AuthError) as exc:
        kind = "server died" if isinstance(exc, ServerDiedError) else "target error"
        print(f"bench {args.command}: {kind}: {exc}", file=sys.stderr)
        return EXIT_TARGET
    except BenchError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_LOADGEN
    except KeyboardInterrupt:
        print(f"bench {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # a file or directory it was told to write (-o, --out) that cannot be
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

"""bench: load tests and benchmarks for real-time WebSocket chat servers.

Run a scenario against the bundled server or your own, compare server configs with repeats and
significance, search the capacity at an SLO, and render self-contained HTML reports.

Exit codes:
    0  ok (and every --slo held)
    1  an --slo failed (the run itself went fine)
    2  usage or configuration error (unknown scenario or preset, bad --set, bad --slo, bad result file)
    3  target or server error (port in use, unreachable target, refused login, server died mid-run)
    4  the load generator failed (Locust crashed or wrote no metrics)
  130  interrupted (Ctrl-C); the partial result is still written
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console

from bench import loadgen, runner
from bench import result as results
from bench import slo as slos
from bench.core.exceptions import (
    AuthError,
    BenchError,
    ConfigError,
    ResultError,
    ServerDiedError,
    TargetError,
    UsageError,
)

if TYPE_CHECKING:
    from bench.servers import ServerSpec

EXIT_OK: Final = 0
EXIT_SLO_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_TARGET: Final = 3
EXIT_LOADGEN: Final = 4
EXIT_INTERRUPTED: Final = 130
DEFAULT_OUT: Final = Path("reports")
DEFAULT_SERVER: Final = "default"

Command = Callable[[argparse.Namespace], int]


# --- shared option groups -------------------------------------------------------------------


def add_server_options(parser: argparse.ArgumentParser, *, many: Sequence[str] = ()) -> None:
    """``many``: the configs a multi-config command runs by default; empty for ``run`` (one, or --target)."""
    group = parser.add_argument_group("server under test")
    if many:
        group.add_argument(
            "--server",
            action="append",
            default=[],
            metavar="PRESET|FILE|peer:NAME",
            help=f"a server config to run (repeatable; default: {' and '.join(many)})",
        )
        group.add_argument(
            "--target",
            action="append",
            default=[],
            metavar="URL",
            help="an external server at http(s)://HOST:PORT to run as well (repeatable)",
        )
    else:
        group.add_argument(
            "--server",
            default=None,
            metavar="PRESET|FILE|peer:NAME",
            help=f"start the bundled server with this preset or TOML file (default: {DEFAULT_SERVER})",
        )
        group.add_argument(
            "--target", default=None, metavar="URL", help="benchmark an external server at http(s)://HOST:PORT instead"
        )
    group.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override one bundled-server config key (repeatable)",
    )
    group.add_argument("--host", default="127.0.0.1", help="address for the bundled server (default 127.0.0.1)")
    group.add_argument("--port", type=int, default=0, help="port for the bundled server (default 0: a free one)")
    auth = parser.add_argument_group("target access")
    auth.add_argument("--ws-path", default="/ws", help="WebSocket path on the target (default /ws)")
    auth.add_argument(
        "--auth",
        choices=("login", "secret", "none"),
        default="login",
        help="tokens: log in at /auth/token (default), mint from --jwt-secret, or none",
    )
    auth.add_argument("--password", default=None, help="password for --auth login (bundled: its configured one)")
    auth.add_argument("--jwt-secret", default=None, help="shared HS256 secret for --auth secret")
    auth.add_argument("--insecure", action="store_true", help="https/wss without certificate checks (test servers)")


_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|m|s)")
_DURATION_UNIT_S: Final = {"h": 3600.0, "m": 60.0, "s": 1.0}


def duration_s(text: str) -> float:
    """``-t``: seconds (``45``, ``2.5``) or Locust's own form (``30s``, ``2m``, ``1h30m``)."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give seconds, or e.g. 30s, 2m, 1h30m")
    return sum(float(n) * _DURATION_UNIT_S[u] for n, u in parts)


def add_load_options(parser: argparse.ArgumentParser, *, duration_help: str = "") -> None:
    group = parser.add_argument_group("load")
    group.add_argument("-u", "--users", type=int, default=None, help="concurrent Locust users (scenario default)")
    group.add_argument("-r", "--spawn-rate", type=float, default=None, help="users started per second")
    group.add_argument(
        "-t",
        "--duration",
        type=duration_s,
        default=None,
        metavar="SECONDS",
        help=duration_help or "run time in seconds, or 30s / 2m / 1h30m (scenario default)",
    )
    group.add_argument("--processes", type=int, default=1, help="Locust processes (default 1)")
    group.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="scenario parameter, passed to the locustfile as --NAME VALUE (repeatable)",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="where runs go (default reports/)")
    group.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="EXPR",
        help="objective such as 'fanout.p99<50ms', 'lost==0', 'delivered_per_s>100k' (repeatable)",
    )
    group.add_argument("--quiet", action="store_true", help="no live progress")


# --- building validated requests from options ---------------------------------------------


def _check_storm_in_run(params: dict[str, str], duration: float) -> None:
    """A storm due after the run ends would never happen, and the run would pass as a calm one."""
    try:
        storm_at = float(params.get(runner.STORM_AT_PARAM, runner.STORM_AT_DEFAULT_S))
    except ValueError:
        return  # the scenario itself refuses the value, as a usage error
    if storm_at >= duration:
        raise UsageError(f"reconnect_storm: storm_at={storm_at:g} s is not within the {duration:g} s run; "
                         "raise -t or lower --param storm_at")  # fmt: skip


def load_spec(args: argparse.Namespace, scenario: str) -> loadgen.LoadSpec:
    name = loadgen.scenario_name(scenario)
    loadgen.scenario_file(scenario)
    defaults = loadgen.SCENARIO_DEFAULTS.get(name, loadgen.FALLBACK_DEFAULTS)
    params = {**defaults.params, **loadgen.parse_params(args.param)}
    implied = loadgen.users_for(name, params)
    if args.users is not None and implied is not None and args.users != implied:
        raise UsageError(f"{name} sizes its users from its parameters ({implied}); drop --users or change --param")
    users = implied or (args.users if args.users is not None else defaults.users)
    spawn_rate = args.spawn_rate if args.spawn_rate is not None else defaults.spawn_rate
    duration = args.duration if args.duration is not None else defaults.duration_s
    if users < 1 or spawn_rate <= 0 or duration <= 0 or args.processes < 1:
        raise UsageError("--users, --spawn-rate, --duration and --processes must be positive")
    if name == "reconnect_storm":
        _check_storm_in_run(params, duration)
    return loadgen.LoadSpec(
        scenario if scenario.endswith(".py") else name, users, spawn_rate, duration, args.processes, params
    )


def auth_spec(args: argparse.Namespace, server: ServerSpec | None) -> loadgen.AuthSpec:
    """Bundled servers: log in with the configured password unless told otherwise."""
    password = args.password if args.password is not None else (server.password if server else "bench")
    secret = args.jwt_secret if args.jwt_secret is not None else (server.jwt_secret if server else None)
    if args.auth == "secret" and not secret:
        raise UsageError("--auth secret needs --jwt-secret")
    return loadgen.AuthSpec(
        ws_path=args.ws_path,
        auth=args.auth,
        password=password,
        jwt_secret=secret if args.auth == "secret" else None,
        insecure=args.insecure,
    )


def server_spec(config: str, overrides: list[str]) -> ServerSpec:
    from bench.servers import resolve_spec

    return resolve_spec(config, overrides)


def writable_dir(path: Path) -> Path:
    """``--out``, created if need be, or UsageError (not a traceback once the server is up)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot create it ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path}: not writable")
    return path


def run_request(
    args: argparse.Namespace, scenario: str, *, server_name: str | None = None, target: str | None = None
) -> runner.RunRequest:
    """A validated request for one run: against ``target`` (a URL) if given, else the bundled server."""
    if target and server_name:
        raise UsageError("give either --server (bundled) or --target (external), not both")
    if target and args.overrides:
        raise UsageError("--set applies to the bundled server, not to --target")
    server = None if target else server_spec(server_name or DEFAULT_SERVER, args.overrides)
    return runner.RunRequest(
        load=load_spec(args, scenario),
        auth=auth_spec(args, server),
        out_dir=writable_dir(args.out),
        server=server,
        target_url=target,
        host=args.host,
        port=args.port,
        slos=slos.parse_slos(args.slo),
        label=getattr(args, "label", None),
        progress=not args.quiet,
        command=shlex.join(["bench", *args.argv]),
    )


def config_requests(args: argparse.Namespace, scenario: str, defaults: Sequence[str]) -> list[runner.RunRequest]:
    """One validated request per ``--server`` and ``--target`` (``defaults`` servers when neither),
    all checked before any of them runs."""
    requests = [run_request(args, scenario, server_name=server) for server in args.server]
    requests += [run_request(args, scenario, target=target) for target in args.target]
    return requests or [run_request(args, scenario, server_name=server) for server in defaults]


def exit_code_of(result: dict[str, Any]) -> int:
    """The exit code a finished run deserves."""
    kind = result.get("failure_kind")
    if result.get("status") != "ok":
        return {runner.SERVER_DIED: EXIT_TARGET, runner.INTERRUPTED: EXIT_INTERRUPTED}.get(kind or "", EXIT_LOADGEN)
    return EXIT_SLO_FAILED if (result.get("slo") or {}).get("passed") is False else EXIT_OK


def console() -> Console:
    return Console(stderr=False, highlight=False)


# --- subcommands ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from bench import summary

    request = run_request(args, args.scenario, server_name=args.server, target=args.target)
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
    from bench import report

    result = results.load(args.result)
    source = results.resolve(args.result)
    path = args.output or source.with_name(results.REPORT_FILE)
    report.write(result, path)
    print(path)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from bench import compare

    return compare.command(args, console())


def cmd_capacity(args: argparse.Namespace) -> int:
    from bench import capacity

    return capacity.command(args, console())


def cmd_serve(args: argparse.Namespace) -> int:
    from server_under_test.cli import serve_from_args

    return serve_from_args(args)


# --- the parser -------------------------------------------------------------------------------


def _add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run one scenario and write result.json + report.html",
        description="Run one scenario against the bundled server or an external target.",
    )
    p.add_argument("scenario", help=f"one of {', '.join(loadgen.SCENARIOS)}, or a locustfile path")
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


def _add_compare(sub: Any) -> None:
    from bench import compare

    p = sub.add_parser(
        "compare",
        help="compare runs, or one scenario across server configs",
        description=compare.DESCRIPTION,
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
    p.set_defaults(func=cmd_compare)


def _add_capacity(sub: Any) -> None:
    from bench import capacity

    p = sub.add_parser(
        "capacity",
        help="raise the offered load until an SLO or zero loss breaks",
        description=capacity.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", help="the scenario to step (publish and reconnect_storm step --param rate)")
    capacity.add_arguments(p)
    add_server_options(p, many=capacity.DEFAULT_SERVERS)
    add_load_options(p, duration_help="seconds per step, or 30s / 2m (default 15)")
    add_output_options(p)
    p.set_defaults(func=cmd_capacity)


def _add_serve(sub: Any) -> None:
    from server_under_test.cli import add_arguments

    p = sub.add_parser(
        "serve",
        help="run the bundled chat server in the foreground",
        description="The bundled chat server, as python -m server_under_test.",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_serve)


SUBCOMMANDS: Final = [_add_run, _add_compare, _add_capacity, _add_report, _add_serve]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )  # the module docstring is the user's help; the code is one cmd_* function per subcommand
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for adder in SUBCOMMANDS:
        adder(sub)
    _load_plugins(sub)
    return parser


def _load_plugins(sub: Any) -> None:
    """Subcommands of later modules, if installed (``bench.perf`` defines ``add_subcommand``)."""
    import importlib

    for name in ("bench.perf",):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_subcommand(sub)


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

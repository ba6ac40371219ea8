"""The option groups that run, compare and capacity share, and how they become harness requests."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from bench.harness import runner
from bench.harness.locust import WORKER_TIMEOUT_S
from bench.harness.requests import DEFAULT_OUT, DEFAULT_SERVER, RunOptions, config_requests, run_request


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
    group.add_argument(
        "--server-cpus", default=None, metavar="CPUS", help="pin the bundled server to these cores (0, 0,2, 0-1)"
    )
    auth = parser.add_argument_group("target access")
    auth.add_argument(
        "--protocol",
        default="chat",
        metavar="NAME|FILE.toml",
        help="the target's wire protocol: chat (default), a shipped dialect (seed), or a dialect file",
    )
    auth.add_argument(
        "--ws-path", default="", help="WebSocket path on the target (default: the protocol's, /ws or /socket.io/)"
    )
    auth.add_argument(
        "--auth",
        choices=("login", "secret", "none"),
        default="login",
        help="tokens: log in at /auth/token (default), mint from --jwt-secret, or none",
    )
    auth.add_argument("--user", default=None, help="log every load user in as this one (the protocol's own login)")
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
    group.add_argument("--loadgen-cpus", default=None, metavar="CPUS", help="pin Locust to these cores (0, 1-3)")
    dist = parser.add_argument_group("distributed load (Locust master and `bench worker` processes)")
    dist.add_argument(
        "--expect-workers",
        type=int,
        default=0,
        metavar="N",
        help="run a Locust master that waits for N `bench worker --master HOST:PORT` processes to run the users",
    )
    dist.add_argument(
        "--master-bind",
        default=None,
        metavar="HOST:PORT",
        help="where the master listens for workers (default *:5557, every interface)",
    )
    dist.add_argument(
        "--worker-timeout",
        type=duration_s,
        default=WORKER_TIMEOUT_S,
        metavar="SECONDS",
        help=f"fail the run if fewer than N workers connected by then (default {WORKER_TIMEOUT_S:g})",
    )
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


def run_options(args: argparse.Namespace) -> RunOptions:
    """The harness's view of the common options (nothing below the CLI sees argparse)."""
    return RunOptions(
        users=args.users,
        spawn_rate=args.spawn_rate,
        duration_s=args.duration,
        processes=args.processes,
        workers=args.expect_workers,
        master_bind=args.master_bind,
        worker_timeout_s=args.worker_timeout,
        params=tuple(args.param),
        overrides=tuple(args.overrides),
        host=args.host,
        port=args.port,
        ws_path=args.ws_path,
        auth=args.auth,
        protocol=args.protocol,
        user=args.user,
        password=args.password,
        jwt_secret=args.jwt_secret,
        insecure=args.insecure,
        out=args.out,
        slos=tuple(args.slo),
        label=getattr(args, "label", None),
        progress=not args.quiet,
        command=shlex.join(["bench", *args.argv]),
        server_cpus=args.server_cpus,
        loadgen_cpus=args.loadgen_cpus,
    )


def one_request(args: argparse.Namespace, scenario: str) -> runner.RunRequest:
    return run_request(run_options(args), scenario, server_name=args.server, target=args.target)


def many_requests(args: argparse.Namespace, scenario: str, defaults: Sequence[str]) -> list[runner.RunRequest]:
    return config_requests(run_options(args), scenario, args.server, args.target, defaults)

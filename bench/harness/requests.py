"""Validated run requests built from plain options: what every command (run, compare, capacity, perf) asks.

The CLI turns its arguments into one :class:`RunOptions`; ``perf`` builds its own. Everything is
checked here, before any server starts, so that a bad value is one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.core import dialect
from bench.core.exceptions import ConfigError, UsageError
from bench.harness import locust, runner
from bench.harness.affinity import parse_cpus
from bench.harness.servers import ServerSpec, resolve_spec
from bench.harness.targets import CHAT_WS_PATH, ws_path_of
from bench.results import slo as slos

DEFAULT_OUT: Final = Path("reports")
DEFAULT_SERVER: Final = "default"
DEFAULT_PASSWORD: Final = "bench"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """The options common to every run; ``None`` means the scenario's or the server's default."""

    users: int | None = None
    spawn_rate: float | None = None
    duration_s: float | None = None
    processes: int = 1
    workers: int = 0  # > 0: a Locust master that waits for this many `bench worker` processes
    master_bind: str | None = None  # HOST:PORT the master listens on (default *:5557)
    worker_timeout_s: float = locust.WORKER_TIMEOUT_S
    params: Sequence[str] = ()  # NAME=VALUE
    overrides: Sequence[str] = ()  # --set KEY=VALUE for the bundled server
    host: str = "127.0.0.1"
    port: int = 0
    ws_path: str = ""  # empty: the protocol's own (/ws for chat)
    auth: str = "login"
    protocol: str = "chat"  # a wire name, a shipped dialect, or a dialect FILE.toml
    user: str | None = None  # one login for every user (the protocol's own login)
    password: str | None = None
    jwt_secret: str | None = None
    insecure: bool = False
    out: Path = DEFAULT_OUT
    slos: Sequence[str] = ()
    label: str | None = None
    progress: bool = True
    command: str = ""
    server_cpus: str | None = None  # cores for the bundled server: "0", "0,2", "0-1"
    loadgen_cpus: str | None = None  # cores for Locust


def _check_storm_in_run(params: dict[str, str], duration: float) -> None:
    """A storm due after the run ends would never happen, and the run would pass as a calm one."""
    try:
        storm_at = float(params.get(runner.STORM_AT_PARAM, runner.STORM_AT_DEFAULT_S))
    except ValueError:
        return  # the scenario itself refuses the value, as a usage error
    if storm_at >= duration:
        raise UsageError(f"reconnect_storm: storm_at={storm_at:g} s is not within the {duration:g} s run; "
                         "raise -t or lower --param storm_at")  # fmt: skip


def load_spec(options: RunOptions, scenario: str) -> locust.LoadSpec:
    name = locust.scenario_name(scenario)
    locust.scenario_file(scenario)
    defaults = locust.SCENARIO_DEFAULTS.get(name, locust.FALLBACK_DEFAULTS)
    params = {**defaults.params, **locust.parse_params(list(options.params))}
    implied = locust.users_for(name, params)
    if options.users is not None and implied is not None and options.users != implied:
        raise UsageError(f"{name} sizes its users from its parameters ({implied}); drop --users or change --param")
    users = implied or (options.users if options.users is not None else defaults.users)
    spawn_rate = options.spawn_rate if options.spawn_rate is not None else defaults.spawn_rate
    duration = options.duration_s if options.duration_s is not None else defaults.duration_s
    if users < 1 or spawn_rate <= 0 or duration <= 0 or options.processes < 1:
        raise UsageError("--users, --spawn-rate, --duration and --processes must be positive")
    if name == "reconnect_storm":
        _check_storm_in_run(params, duration)
    return locust.LoadSpec(
        scenario if scenario.endswith(".py") else name,
        users,
        spawn_rate,
        duration,
        options.processes,
        params,
        cpus=parse_cpus(options.loadgen_cpus, "--loadgen-cpus"),
        **_distribution(options),
    )


def _distribution(options: RunOptions) -> dict[str, Any]:
    """The LoadSpec fields of a distributed run (``--expect-workers``), checked."""
    if options.workers < 0 or options.worker_timeout_s <= 0:
        raise UsageError("--expect-workers and --worker-timeout must be positive")
    if not options.workers:
        if options.master_bind is not None:
            raise UsageError("--master-bind needs --expect-workers N")
        return {}
    if options.processes > 1:
        raise UsageError("--processes and --expect-workers do not mix: give each `bench worker` --processes instead")
    bind = locust.parse_endpoint(options.master_bind, what="--master-bind") if options.master_bind else None
    return {
        "workers": options.workers,
        "worker_timeout_s": options.worker_timeout_s,
        **({"master_bind": bind} if bind else {}),
    }


def auth_spec(options: RunOptions, server: ServerSpec | None, target: str | None = None) -> locust.AuthSpec:
    """Bundled servers: log in with the configured password unless told otherwise. A ``ws://HOST/PATH``
    target's path is the WebSocket path."""
    default_password = server.password if server else DEFAULT_PASSWORD
    password = options.password if options.password is not None else default_password
    secret = options.jwt_secret if options.jwt_secret is not None else (server.jwt_secret if server else None)
    if options.auth == "secret" and not secret:
        raise UsageError("--auth secret needs --jwt-secret")
    return locust.AuthSpec(
        ws_path=(ws_path_of(target) if target else None)
        or options.ws_path
        or (CHAT_WS_PATH if options.protocol == "chat" else ""),  # others: the protocol's own
        auth=options.auth,
        protocol=protocol_arg(options.protocol),
        user=options.user,
        password=password,
        jwt_secret=secret if options.auth == "secret" else None,
        insecure=options.insecure,
    )


def protocol_arg(name: str) -> str:
    """``--protocol`` for the locustfile: a dialect file checked here (absolute, and valid), a name as given."""
    if not name.endswith(".toml"):
        return name
    path = Path(name).expanduser().resolve()
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"--protocol {name}: cannot read it ({exc.strerror})") from None
    try:
        dialect.parse(text, source=name)
    except ConfigError as exc:
        raise UsageError(f"--protocol {exc}") from None
    return str(path)


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
    options: RunOptions, scenario: str, *, server_name: str | None = None, target: str | None = None
) -> runner.RunRequest:
    """A validated request for one run: against ``target`` (a URL) if given, else the bundled server."""
    if target and server_name:
        raise UsageError("give either --server (bundled) or --target (external), not both")
    if target and options.overrides:
        raise UsageError("--set applies to the bundled server, not to --target")
    if target and options.server_cpus:
        raise UsageError("--server-cpus applies to the bundled server, not to --target")
    server = None if target else resolve_spec(server_name or DEFAULT_SERVER, list(options.overrides))
    return runner.RunRequest(
        load=load_spec(options, scenario),
        auth=auth_spec(options, server, target),
        out_dir=writable_dir(options.out),
        server=server,
        target_url=target,
        host=options.host,
        port=options.port,
        server_cpus=parse_cpus(options.server_cpus, "--server-cpus"),
        slos=slos.parse_slos(list(options.slos)),
        label=options.label,
        progress=options.progress,
        command=options.command,
    )


def config_requests(
    options: RunOptions, scenario: str, servers: Sequence[str], targets: Sequence[str], defaults: Sequence[str]
) -> list[runner.RunRequest]:
    """One validated request per server and target (``defaults`` servers when neither), all checked
    before any of them runs."""
    requests = [run_request(options, scenario, server_name=server) for server in servers]
    requests += [run_request(options, scenario, target=target) for target in targets]
    return requests or [run_request(options, scenario, server_name=server) for server in defaults]

"""Locust as a headless child process: the command line, the environment, and how to stop it.

The scenario (a locustfile) writes its metrics to ``BENCH_METRICS_OUT`` when the test stops, also on
failure, and one time-series point per second to ``BENCH_LIVE_OUT``; this module only drives the
process and reads those files back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.core.exceptions import UsageError
from bench.core.schema import LIVE_ENV, METRICS_ENV, WORKER_GREETED, WORKER_REFUSED
from bench.harness.affinity import CpuSet, pin

SCENARIOS: Final = ("subscribe", "publish", "reconnect_storm", "infinite_scroll", "chat")


def _scenarios_dir() -> Path:
    """Where the shipped locustfiles are: located, never imported (no package imports ``scenarios``)."""
    spec = importlib.util.find_spec("scenarios")
    origin = spec.origin if spec else None
    return Path(origin).resolve().parent if origin else Path(__file__).resolve().parents[2] / "scenarios"


SCENARIOS_DIR: Final = _scenarios_dir()
STOP_GRACE_S: Final = 30.0
_PARAM_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_UNRECOGNIZED: Final = re.compile(r"error: unrecognized arguments: (?P<options>.*)")
_ERROR_LINE: Final = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception)\b|\S+: error: )")
_TABLE_LINE: Final = re.compile(r"^[\s|\-=+]*$|^(?:Type|Aggregated|Response time percentiles)\b")
_BAD_ARGUMENT: Final = re.compile(r"error: argument --(?P<name>[A-Za-z0-9_-]+)(?:/\S+)?: (?P<problem>.*)")


@dataclass(frozen=True, slots=True)
class LoadDefaults:
    users: int
    spawn_rate: float
    duration_s: float
    params: dict[str, str] = field(default_factory=dict)


# What ``bench run SCENARIO`` offers when not told otherwise: a meaningful 30-60 s run on a laptop.
# publish: 10 channels x 50 subscribers, 10 publishers at 20 msg/s = 200 published, 10,000 delivered /s.
SCENARIO_DEFAULTS: Final = {
    "subscribe": LoadDefaults(users=500, spawn_rate=100, duration_s=30),
    "publish": LoadDefaults(
        users=510,
        spawn_rate=100,
        duration_s=40,
        params={"channels": "10", "subscribers_per_channel": "50", "publishers": "10", "rate": "20"},
    ),
    "reconnect_storm": LoadDefaults(
        users=204,
        spawn_rate=100,
        duration_s=30,
        params={"channels": "4", "subscribers_per_channel": "50", "publishers": "4", "rate": "5", "storm_at": "10"},
    ),
    "infinite_scroll": LoadDefaults(users=50, spawn_rate=25, duration_s=30),
    "chat": LoadDefaults(users=200, spawn_rate=50, duration_s=45),
}
FALLBACK_DEFAULTS: Final = LoadDefaults(users=10, spawn_rate=10, duration_s=30)


def scenario_file(name: str) -> Path:
    """The locustfile for a scenario name, or a path to a locustfile of one's own."""
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"scenario file {name!r} does not exist")
        return path.resolve()
    path = SCENARIOS_DIR / f"{name}.py"
    if name not in SCENARIOS or not path.is_file():
        available = [s for s in SCENARIOS if (SCENARIOS_DIR / f"{s}.py").is_file()]
        raise UsageError(f"unknown scenario {name!r}; available: {', '.join(available) or 'none installed'}")
    return path


def scenario_name(name: str) -> str:
    return Path(name).stem if name.endswith(".py") else name


def _fanout_users(params: dict[str, str]) -> int:
    channels, subscribers, publishers = (int(params[k]) for k in ("channels", "subscribers_per_channel", "publishers"))
    if channels < 1 or publishers < 1 or subscribers < 0:
        given = f"channels={channels}, publishers={publishers}, subscribers_per_channel={subscribers}"
        raise UsageError(f"needs channels >= 1, publishers >= 1 and subscribers_per_channel >= 0 (given {given})")
    return channels * subscribers + publishers


# Scenarios whose user classes have fixed counts: ``-u`` must equal what the parameters imply.
USERS_FROM_PARAMS: Final = {"publish": _fanout_users, "reconnect_storm": _fanout_users}


def users_for(scenario: str, params: dict[str, str]) -> int | None:
    """The user count a scenario's parameters imply, or None when the count is free."""
    derive = USERS_FROM_PARAMS.get(scenario)
    if derive is None:
        return None
    try:
        return derive(params)
    except UsageError as exc:
        raise UsageError(f"scenario {scenario}: {exc}") from None
    except KeyError as exc:
        raise UsageError(f"scenario {scenario}: missing parameter {exc}") from None
    except ValueError:
        counts = ", ".join(f"{k}={params.get(k)}" for k in ("channels", "subscribers_per_channel", "publishers"))
        raise UsageError(f"scenario {scenario}: channels, subscribers_per_channel and publishers are whole numbers "
                         f"(given {counts})") from None  # fmt: skip


def parse_params(items: list[str]) -> dict[str, str]:
    """``--param k=v`` items into a dict (``k`` in snake_case or kebab-case), or UsageError."""
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _PARAM_NAME.match(key):
            raise UsageError(f"--param {item!r} must look like name=value")
        params[key.replace("-", "_")] = value.strip()
    return params


DEFAULT_MASTER_PORT: Final = 5557  # Locust's own
WORKER_TIMEOUT_S: Final = 60.0
_ENDPOINT: Final = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d{1,5}))?$")
_GAVE_UP: Final = "Gave up waiting for workers to connect"
_WORKERS_READY: Final = re.compile(r"(?:Waiting for workers to be ready, (?P<ready>\d+) of \d+ connected|"
                                   r"reported as ready\. (?P<connected>\d+) workers connected|"
                                   + re.escape(WORKER_GREETED) + r" \S+, (?P<greeted>\d+) ready)")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ``HOST:PORT`` of the Locust master (``*`` binds every interface)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(text: str, *, what: str = "--master") -> Endpoint:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``HOST`` (port 5557), or UsageError."""
    match = _ENDPOINT.match(text.strip())
    port = int(match["port"] or DEFAULT_MASTER_PORT) if match else 0
    if match is None or not 0 < port < 65536:
        raise UsageError(f"{what} {text!r} must look like HOST:PORT (e.g. 10.0.0.5:{DEFAULT_MASTER_PORT})")
    return Endpoint(match["v6"] or match["host"], port)


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """The offered load: users, ramp, duration, processes and scenario parameters.

    ``workers`` > 0 makes Locust a master bound on ``master_bind`` that waits up to
    ``worker_timeout_s`` for that many ``bench worker`` processes, which then run all the users.
    """

    scenario: str
    users: int
    spawn_rate: float
    duration_s: float
    processes: int = 1
    params: dict[str, str] = field(default_factory=dict)
    cpus: CpuSet = ()  # the cores Locust (and its --processes workers) may run on; () any
    workers: int = 0
    master_bind: Endpoint = Endpoint("*", DEFAULT_MASTER_PORT)
    worker_timeout_s: float = WORKER_TIMEOUT_S

    def worker_hint(self) -> str:
        """The command that starts one worker for this master (``*`` binds: this machine's name)."""
        bind = self.master_bind
        host = socket.gethostname() if bind.host in ("*", "0.0.0.0", "::") else bind.host
        return f"bench worker --master {Endpoint(host, bind.port)} {self.scenario}"

    def ramp_warning(self) -> str | None:
        """A note when starting the users takes half the run or more: its averages then describe the ramp."""
        ramp_s = self.users / self.spawn_rate
        if ramp_s < self.duration_s / 2:
            return None
        return (
            f"starting {self.users} users at {self.spawn_rate:g}/s takes {ramp_s:.1f} s of the {self.duration_s:g} s "
            "run: its rates and latencies are mostly the ramp's (raise -t or -r)"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration_s": self.duration_s,
            "processes": self.processes,
            "params": dict(self.params),
            "cpus": list(self.cpus),
            **({"workers": self.workers, "master_bind": str(self.master_bind)} if self.workers else {}),
        }


@dataclass(frozen=True, slots=True)
class AuthSpec:
    """How the load users get tokens from the target (the scenarios' ``--auth`` options)."""

    ws_path: str = ""  # empty: the protocol's own (/ws for chat)
    auth: str = "login"
    password: str = "bench"
    jwt_secret: str | None = None
    insecure: bool = False  # https/wss without certificate checks (self-signed test servers)
    protocol: str = "chat"  # the locustfile's --protocol: a wire name or a dialect file
    user: str | None = None  # one login name for every user (the protocol's own login)

    def describe(self) -> dict[str, Any]:
        return {
            "ws_path": self.ws_path,
            "auth": self.auth,
            "protocol": self.protocol,
            **({"user": self.user} if self.user else {}),
            **({"tls_insecure": True} if self.insecure else {}),
        }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def locust_command(load: LoadSpec, auth: AuthSpec, host: str) -> list[str]:
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(scenario_file(load.scenario)),
        "--headless", "--only-summary",
        "-u", str(load.users),
        "-r", f"{load.spawn_rate:g}",
        "-t", f"{max(1, round(load.duration_s))}s",
        "--host", host,
        "--exit-code-on-error", "0",
        "--loglevel", "WARNING",
        "--ws-path", auth.ws_path,
        "--auth", auth.auth,
        "--password", auth.password,
    ]  # fmt: skip
    if auth.jwt_secret:
        cmd += ["--jwt-secret", auth.jwt_secret]
    if auth.protocol != "chat":
        cmd += ["--protocol", auth.protocol]
    if auth.user:
        cmd += ["--user", auth.user]
    if auth.insecure:
        cmd += ["--tls-insecure", "on"]
    if load.workers:  # a master for `bench worker` processes; INFO logs how many have connected
        bind = load.master_bind
        cmd += ["--master", "--master-bind-host", bind.host, "--master-bind-port", str(bind.port),
                "--expect-workers", str(load.workers), "--expect-workers-max-wait", f"{load.worker_timeout_s:g}",
                "--loglevel", "INFO"]  # fmt: skip
    elif load.processes > 1:  # a free port for master and workers: two runs at once must not share 5557
        port = free_port()
        cmd += ["--processes", str(load.processes), "--master-bind-port", str(port), "--master-port", str(port)]
    for key, value in load.params.items():
        cmd += [f"--{key.replace('_', '-')}", value]
    return cmd


def worker_command(scenario: str, master: Endpoint, processes: int = 1) -> list[str]:
    """A Locust worker of ``scenario`` for the master at ``master``: users, host and parameters come
    from the master (Locust sends its parsed options with every spawn message)."""
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(scenario_file(scenario)),
        "--worker", "--master-host", master.host, "--master-port", str(master.port),
        "--loglevel", "INFO",
    ]  # fmt: skip
    return cmd + (["--processes", str(processes)] if processes > 1 else [])


class LocustProcess:
    """One Locust process: a headless run (its output goes to ``log_path``, its metrics to files in
    ``work_dir``) or, from :meth:`worker`, a worker for a remote master."""

    def __init__(
        self,
        load: LoadSpec,
        auth: AuthSpec,
        host: str,
        work_dir: Path,
        *,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self._setup([*locust_command(load, auth, host), *extra_args], load.scenario, work_dir, env, load.cpus)

    @classmethod
    def worker(cls, scenario: str, master: Endpoint, work_dir: Path, *, processes: int = 1) -> LocustProcess:
        """A worker for the master at ``master``; it stops when the master does."""
        process = cls.__new__(cls)
        process._setup(worker_command(scenario, master, processes), scenario, work_dir, None, ())
        return process

    def _setup(
        self, command: list[str], scenario: str, work_dir: Path, env: dict[str, str] | None, cpus: CpuSet
    ) -> None:
        self.command = command
        self.cpus = cpus
        self.env = env or {}
        self.scenario_path = scenario_file(scenario)
        self.work_dir = work_dir
        self.metrics_path = work_dir / "metrics.json"
        self.live_path = work_dir / "live.jsonl"
        self.log_path = work_dir / "locust.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._live_offset = 0

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.metrics_path, self.live_path):
            stale.unlink(missing_ok=True)
        env = {**os.environ, **self.env, METRICS_ENV: str(self.metrics_path), LIVE_ENV: str(self.live_path)}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as log:
            log.write(("$ " + " ".join(self.command) + "\n").encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=pin(self.cpus),
            )

    @property
    def pid(self) -> int | None:
        """The Locust (master) process id once started, for CPU and memory readings."""
        return self._proc.pid if self._proc else None

    def poll(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def wait(self, timeout: float) -> int | None:
        """Let Locust finish by itself within ``timeout``, then stop it as :meth:`stop` does; its exit code."""
        if self._proc is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout)
        return self.stop()

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM (Locust stops its users and writes the metrics), SIGKILL of the group after ``grace_s``."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._kill_stragglers(proc.pid)
        return proc.returncode

    @staticmethod
    def _kill_stragglers(pgid: int) -> None:
        """Worker processes (``--processes``) that outlived their master."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def new_points(self) -> list[dict[str, Any]]:
        """Time-series points appended to the live file since the last call (whole lines only)."""
        try:
            with self.live_path.open("rb") as live:
                live.seek(self._live_offset)
                data = live.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self._live_offset += end
        points = []
        for line in data[:end].splitlines():
            try:
                point = json.loads(line)
            except ValueError:
                continue
            if isinstance(point, dict):
                points.append(point)
        return points

    def metrics(self) -> dict[str, Any] | None:
        """The fragment the scenario wrote at stop, or None if it wrote none (or a broken one)."""
        try:
            data = json.loads(self.metrics_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def rejected_options(self) -> str | None:
        """Why Locust refused its command line at start, if that is why it quit: ``has no option --x 1``
        (``unrecognized arguments``) or ``--param rate: invalid float value: 'abc'`` (a bad value)."""
        text = self._log_text()
        if match := _UNRECOGNIZED.search(text):
            return f"has no option {match['options'].strip()}"
        if match := _BAD_ARGUMENT.search(text):
            return f"--param {match['name']}: {match['problem'].strip()}"
        return None

    def workers_connected(self) -> int:
        """How many workers the master last said were connected (its INFO log), 0 before any."""
        text = self._log_text()
        counts = [int(m["ready"] or m["connected"] or m["greeted"]) for m in _WORKERS_READY.finditer(text)]
        return counts[-1] if counts else 0

    def gave_up_on_workers(self) -> bool:
        """Whether a master quit because too few workers connected within ``--expect-workers-max-wait``."""
        return _GAVE_UP in self._log_text()

    def refusals(self) -> list[str]:
        """Why the master sent workers home, or why this worker was sent home (its log's refusal lines)."""
        found = (
            line[line.index(WORKER_REFUSED) :].strip()
            for line in self._log_text().splitlines()
            if WORKER_REFUSED in line
        )
        return list(dict.fromkeys(found))

    def _log_text(self) -> str:
        """locust.log as it is now ("" before Locust wrote it)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 3) -> str:
        text = self._log_text()
        kept = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("$ ")]
        errors = [line for line in kept if _ERROR_LINE.match(line)]
        if errors:  # the exception that ended it says more than Locust's closing stats table
            return errors[-1]
        return " | ".join([line for line in kept if not _TABLE_LINE.match(line)][-lines:])

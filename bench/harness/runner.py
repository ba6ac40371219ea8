"""One benchmark run: server up, Locust headless, live progress, result.json and report.html.

``execute`` never leaves a child process behind: the load generator and the bundled server are
stopped on every path out, including a server that dies mid-run (the partial result is still
written, marked failed) and Ctrl-C.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from bench.core.exceptions import BenchError, ServerDiedError, TargetError, UsageError
from bench.harness import envinfo
from bench.harness.affinity import CpuSet
from bench.harness.locust import AuthSpec, LoadSpec, LocustProcess, scenario_name
from bench.harness.servers import ExternalServer, ManagedServer, ServerSpec
from bench.harness.targets import check_target
from bench.report import run as report
from bench.report.progress import RunProgress
from bench.results import run as results
from bench.results import slo as slos

POLL_S: Final = 0.2
OVERRUN_S: Final = 60.0  # how long past its planned duration Locust may take to stop and write metrics
STORM_RESTART_PARAMS: Final = ("storm_mode", "restart")  # --param storm_mode=restart
STORM_AT_PARAM: Final = "storm_at"
STORM_AT_DEFAULT_S: Final = 10.0

# failure kinds, recorded in result.json and mapped to exit codes by the CLI
SERVER_DIED: Final = "server_died"
LOADGEN_FAILED: Final = "load_generator"
WORKERS_MISSING: Final = "workers_missing"  # --expect-workers: too few arrived in time
INTERRUPTED: Final = "interrupted"


@dataclass(slots=True)
class RunRequest:
    """Everything ``bench run`` was asked to do, already validated."""

    load: LoadSpec
    auth: AuthSpec
    out_dir: Path
    server: ServerSpec | None = None
    target_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    server_cpus: CpuSet = ()
    slos: list[slos.Slo] = field(default_factory=list)
    label: str | None = None
    progress: bool = True
    command: str = ""  # the command line that asked for this run, to reproduce it

    @property
    def name(self) -> str:
        """What this run is called in reports: ``--label``, else the server config or the URL."""
        return self.label or (self.server.label if self.server else self.target_url or "target")


def storm_restart_at(load: LoadSpec) -> float | None:
    """When the orchestrator must restart the bundled server (the storm's ``restart`` mode), or None."""
    key, value = STORM_RESTART_PARAMS
    if load.params.get(key) != value:
        return None
    return float(load.params.get(STORM_AT_PARAM, STORM_AT_DEFAULT_S))


def _target_info(request: RunRequest, url: str) -> dict[str, Any]:
    info: dict[str, Any] = {"url": url, **request.auth.describe()}
    if request.server is None:
        return {"kind": "external", "label": request.name, **info}
    spec = request.server
    return {
        "kind": "peer" if spec.is_peer else "bundled",
        "label": request.name,
        "config_source": spec.config,
        "overrides": list(spec.overrides),
        "cpus": list(request.server_cpus),
        **info,
        "config": spec.described,
    }


class _Run:
    """The mutable state of one execution (kept out of ``execute`` to keep each step small)."""

    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.name = scenario_name(request.load.scenario)
        self.label = request.name
        self.run_id = results.new_run_id(self.name, self.label)
        self.run_dir = request.out_dir / self.run_id
        self.server: ManagedServer | ExternalServer | None = None
        self.failure: str | None = None
        self.failure_kind: str | None = None
        self.events: list[dict[str, Any]] = []
        self.started = datetime.now(UTC)

    def fail(self, kind: str, message: str) -> None:
        if self.failure is None:
            self.failure_kind, self.failure = kind, message

    def event(self, kind: str, message: str, progress: RunProgress) -> None:
        """Record what the orchestrator did: ``t`` on the progress clock, ``epoch`` to place it on plots."""
        self.events.append({"t": round(progress.elapsed, 3), "epoch": round(time.time(), 3), "kind": kind,
                            "event": message})  # fmt: skip
        progress.note(message)

    def bring_up_target(self) -> str:
        req = self.request
        if req.server is None:
            target = req.target_url
            assert target is not None
            self.server = ExternalServer(target, lambda: check_target(target, req.auth))
        else:
            self.server = ManagedServer(
                req.server, self.run_dir / "server.log", host=req.host, port=req.port, cpus=req.server_cpus
            )
        try:
            return self.server.start()
        except BenchError:
            shutil.rmtree(self.run_dir, ignore_errors=True)  # nothing was measured: leave no empty run behind
            raise

    def drive(self, locust: LocustProcess, progress: RunProgress) -> None:
        """Poll until Locust exits: live points, server health, the storm restart, the deadline."""
        load = self.request.load
        restart_at = storm_restart_at(load) if isinstance(self.server, ManagedServer) else None
        deadline = load.duration_s + OVERRUN_S + (load.worker_timeout_s if load.workers else 0.0)
        if load.workers:
            self.event("waiting for workers", f"waiting up to {load.worker_timeout_s:g} s for {load.workers} "
                       f"workers: {load.worker_hint()}", progress)  # fmt: skip
        test_start: float | None = None  # the epoch second of the scenario's t=0 (its storm clock)
        while locust.poll() is None:
            for point in locust.new_points():
                if test_start is None and "epoch_s" in point:
                    test_start = float(point["epoch_s"]) - float(point.get("t", 0))
                progress.update(point)
            progress.update()
            if not self.server_alive(progress):
                return
            if restart_at is not None and test_start is not None and time.time() - test_start >= restart_at:
                restart_at = None
                self.restart_server(progress)
            if progress.elapsed > deadline:
                self.fail(LOADGEN_FAILED, f"the load generator did not stop within {OVERRUN_S:.0f} s of its duration")
                return
            time.sleep(POLL_S)
        for point in locust.new_points():
            progress.update(point)

    def server_alive(self, progress: RunProgress) -> bool:
        if self.server is None:
            return True
        try:
            self.server.check_alive()
        except ServerDiedError as exc:
            self.fail(SERVER_DIED, str(exc))
            self.event("server died", "server died; stopping the load", progress)
            return False
        return True

    def restart_server(self, progress: RunProgress) -> None:
        """The reconnect storm's ``restart`` mode: SIGTERM (shutdown notice, close 1012), start again."""
        assert self.server is not None
        self.event("server restart", "restarting the server (reconnect storm)", progress)
        self.server.restart()
        self.event("server back", f"server back on {self.server.url}", progress)

    def finish_locust(self, locust: LocustProcess) -> dict[str, Any] | None:
        code = locust.stop()
        fragment = locust.metrics()
        load = self.request.load
        if load.workers and locust.gave_up_on_workers():
            hint = load.worker_hint()
            refused = "".join(f"; {line}" for line in locust.refusals())
            self.fail(WORKERS_MISSING, f"only {locust.workers_connected()} of {load.workers} workers connected "
                      f"within {load.worker_timeout_s:g} s (start each with: {hint}){refused}")  # fmt: skip
        if code not in (0, None) and self.failure is None:
            self.fail(LOADGEN_FAILED, f"the load generator exited with code {code}: {locust.log_tail()}")
        elif fragment is None:
            self.fail(LOADGEN_FAILED, f"the load generator wrote no metrics: {locust.log_tail() or 'no output'}")
        return fragment

    def assemble(self, url: str, fragment: dict[str, Any] | None) -> dict[str, Any]:
        req = self.request
        target = _target_info(req, url)
        if isinstance(self.server, ManagedServer):
            target["restarts"] = self.server.restarts
            if "port" in target["config"]:  # the address it really listened on, not the preset's
                target["config"] = {**target["config"], "host": self.server.host, "port": self.server.port}
        result = results.assemble(
            run_id=self.run_id,
            scenario=self.name,
            target=target,
            load=req.load.describe(),
            started_at=self.started,
            finished_at=datetime.now(UTC),
            fragment=fragment,
            environment=envinfo.collect(),
            failure=self.failure,
            events=self.events,
        )
        result["failure_kind"] = self.failure_kind
        result["command"] = req.command
        result["slo"] = slos.evaluate(req.slos, result)
        return result


def execute(request: RunRequest, console: Console) -> tuple[dict[str, Any], Path]:
    """Run once; returns the result dict and its run directory (result.json and report.html written).

    Raises TargetError (and friends) only before any load was offered; after that every problem
    becomes a failed result.
    """
    run = _Run(request)
    title = f"{run.name} · {run.label}"
    try:
        url = run.bring_up_target()
        locust = LocustProcess(request.load, request.auth, url, run.run_dir)
        run.started = datetime.now(UTC)
        locust.start()
        with RunProgress(console, title, request.load.duration_s, enabled=request.progress) as progress:
            try:
                run.drive(locust, progress)
            except KeyboardInterrupt:
                run.fail(INTERRUPTED, "interrupted by the user")
            except BenchError as exc:  # e.g. the storm restart could not bring the server back
                run.fail(SERVER_DIED if isinstance(exc, TargetError) else LOADGEN_FAILED, str(exc))
            finally:
                fragment = run.finish_locust(locust)
    finally:
        if run.server is not None:
            run.server.stop()
    rejected = locust.rejected_options() if run.failure_kind == LOADGEN_FAILED else None
    if rejected:  # a --param the scenario does not have, or a bad value: a usage error, not a run
        shutil.rmtree(run.run_dir, ignore_errors=True)
        if "--ws-path" in rejected:  # not even the options every chatbench scenario takes
            raise UsageError(
                f"{locust.scenario_path} is not a chatbench locustfile: it takes none of the common options "
                "(--ws-path, --auth, ...); build it on bench.loadgen.runtime as scenarios/*.py do (runtime.install)"
            )
        if rejected.startswith("--param protocol: "):  # an unknown protocol, or one the scenario cannot use
            raise UsageError(rejected.removeprefix("--param protocol: "))
        sep = " " if rejected.startswith("has no") else ": "
        raise UsageError(f"scenario {run.name}{sep}{rejected} (its options: locust -f {locust.scenario_path} --help)")
    result = run.assemble(url, fragment)
    results.write(result, run.run_dir)
    report.write(result, run.run_dir / results.REPORT_FILE)
    return result, run.run_dir

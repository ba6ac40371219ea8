"""``bench perf``: the performance benchmark in one invocation, with the ratios against its targets.

Four parts, each a reuse of a tool that also stands alone:

capacity   ``bench capacity publish`` at ``fanout.p99<50ms`` and ``lost==0`` for every config, same
           shape for all, stepping the offered publish rate; a step only holds if no load-generator
           process saturated (the limit measured is the server's, on a machine the two share)
cost       server and load-generator CPU per delivered message, every config at one offered load
loadgen    ``python -m bench.harness.clientbench``: messages received per CPU-second of one Locust process,
           our client against the websocket-client Locust user, from the same firehose
memory     bytes per idle subscribed connection on the server (``memcheck``, each config) and in our
           load generator (one Locust process), at ``--conns`` connections

The ratios are taken from this one run; perf.json and perf.html go to ``reports/perf-<stamp>/``.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from bench.core.schema import SATURATION_PERCENT
from bench.harness import capacity, envinfo, runner
from bench.harness.affinity import CpuSet, default_split, parse_cpus
from bench.harness.requests import RunOptions, config_requests
from bench.report import capacity as capacity_report
from bench.report.perf_report import ratios, render_html
from bench.results import run as results

SPAWN_RATE: Final = 400.0  # users connected per second during a capacity step's warm-up
PARTS: Final = ("capacity", "latency", "cost", "loadgen", "memory")
SERVERS: Final = ("default", "naive", "peer:node-ws", "peer:picows")
SLO: Final = "fanout.p99<50ms"
TIGHT_SLO: Final = "fanout.p99<10ms"  # interactive chat: the latency part's capacity
PERF_JSON: Final = "perf.json"
PERF_HTML: Final = "perf.html"
DESCRIPTION: Final = __doc__.split("\n\n", 1)[1] if __doc__ else ""


@dataclass(frozen=True, slots=True)
class Plan:
    """How big each part is; ``FULL`` is the benchmark, ``QUICK`` a smoke run of the same path."""

    channels: int
    subscribers: int  # per channel
    publishers: int
    start_rate: float  # messages/s per publisher at the first capacity step
    factor: float
    max_steps: int
    refine: int
    confirm: int  # tries more for a step that broke (noise on a shared machine), see capacity --confirm
    step_s: float
    processes: int  # Locust processes for capacity
    settle_s: float  # after the connection ramp, before publishing: the join presence notices drain
    cost_rate: float  # cost part: msg/s per publisher, one fixed load for every config
    cost_window_s: float
    bench_users: int  # loadgen part: receiving connections in the one Locust process
    bench_rates: tuple[int, ...]
    bench_step_s: float
    conns: int  # memory part
    warm: int
    latency_loads: tuple[int, ...] = (40_000, 80_000, 160_000)  # latency part: offered deliveries/s
    latency_s: float = 12.0  # seconds of publishing at each of them

    def rate_for(self, deliveries_per_s: float) -> float:
        """The rate per publisher (msg/s) that offers ``deliveries_per_s`` in this shape."""
        shape = self.shape()
        return float(deliveries_per_s / (self.publishers * shape["deliveries_per_publish"]))

    def warmup_s(self) -> float:
        """Seconds before publishing: the connection ramp at ``SPAWN_RATE``, then ``settle_s``."""
        return float(math.ceil(self.shape()["connections"] / SPAWN_RATE) + self.settle_s)

    def describe(self) -> dict[str, Any]:
        method = {"slo": [SLO, capacity.ZERO_LOSS], "capacity_processes": self.processes, "step_s": self.step_s}
        return {**self.shape(), **method, "warmup_s": self.warmup_s(), "confirm_tries": self.confirm}

    def shape(self) -> dict[str, Any]:
        receivers = self.channels * self.subscribers
        return {
            "scenario": "publish",
            "channels": self.channels,
            "subscribers_per_channel": self.subscribers,
            "publishers": self.publishers,
            "message_bytes": 100,
            "connections": receivers + self.publishers,
            "deliveries_per_publish": self.subscribers + self.publishers // self.channels,
        }


# The shape: a live event's chat. Two rooms of 500 members with 20 talkers each (1,040 connections).
# Big rooms are where chat back ends fall over in practice (a stream's chat, an all-hands channel):
# every message is written to 520 sockets, so fan-out is the whole cost, and many talkers per room
# give the interleaved streams and per-channel rates that make a server's batching (or its absence)
# show. Every config gets the same shape; the search raises the rate per talker, so the offered
# deliveries per second double each step (20,800 at 1 msg/s each) from a naive server's range up.
FULL: Final = Plan(
    channels=2, subscribers=500, publishers=40, start_rate=1.0, factor=2.0, max_steps=7, refine=2, confirm=1,
    step_s=12.0, processes=2, settle_s=5.0, cost_rate=4.0, cost_window_s=8.0,
    bench_users=10, bench_rates=(5000, 10000, 20000, 40000, 80000, 120000, 160000), bench_step_s=4.0,
    conns=5000, warm=100,
)  # fmt: skip
QUICK: Final = Plan(
    channels=2, subscribers=5, publishers=2, start_rate=20.0, factor=2.0, max_steps=1, refine=0, confirm=0,
    step_s=3.0, processes=1, settle_s=1.0, cost_rate=20.0, cost_window_s=2.0,
    bench_users=4, bench_rates=(8000,), bench_step_s=1.5, conns=200, warm=20, latency_loads=(240,), latency_s=2.0,
)  # fmt: skip


# --- the three parts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pins:
    """The cores of the server and of the load generator (``()``: not pinned)."""

    server: CpuSet = ()
    loadgen: CpuSet = ()

    def describe(self) -> dict[str, Any]:
        return {"pinned": bool(self.server or self.loadgen), "server_cpus": list(self.server),
                "loadgen_cpus": list(self.loadgen)}  # fmt: skip


def _options(plan: Plan, pins: Pins, out_dir: Path, quiet: bool, *, rate: float, seconds: float, slo: str,
             part: str) -> RunOptions:  # fmt: skip
    """One run of the plan's shape at ``rate`` msg/s per publisher, ``seconds`` of publishing after the warm-up."""
    warmup = plan.warmup_s()
    shape = {"channels": plan.channels, "subscribers_per_channel": plan.subscribers, "publishers": plan.publishers,
             "rate": rate, "warmup": warmup}  # fmt: skip
    return RunOptions(
        duration_s=warmup + seconds,
        spawn_rate=SPAWN_RATE,
        processes=plan.processes,
        params=tuple(f"{key}={value:g}" for key, value in shape.items()),
        auth="secret",
        out=out_dir,
        slos=(slo, capacity.ZERO_LOSS),
        progress=not quiet,
        command=f"bench perf --only {part}",
        server_cpus=",".join(map(str, pins.server)) or None,
        loadgen_cpus=",".join(map(str, pins.loadgen)) or None,
    )


def run_capacity(
    plan: Plan, servers: list[str], out_dir: Path, quiet: bool, console: Console, pins: Pins, slo: str = SLO
) -> list[dict[str, Any]]:
    """``bench capacity publish`` over ``servers`` with the plan's shape; its summary rows plus loadgen CPU."""
    options = _options(plan, pins, out_dir, quiet, rate=plan.start_rate, seconds=plan.step_s, slo=slo, part="capacity")
    requests = config_requests(options, "publish", servers, (), SERVERS)
    steps = capacity.Plan(step_param="rate", start=plan.start_rate, factor=plan.factor, max_steps=plan.max_steps,
                          refine=plan.refine, confirm=plan.confirm)  # fmt: skip
    searches = []
    for request in requests:
        request.out_dir = out_dir / results.safe_name(request.name)
        searches.append(capacity.search(request, steps, console, request.name))
    rows = capacity.summary_rows(searches, "rate")
    for row, found in zip(rows, searches, strict=True):
        best = found.best
        loadgen = (best.result.get("loadgen") or {}) if best else {}
        row["loadgen_cpu_percent_max"] = loadgen.get("cpu_percent_max_under_load", loadgen.get("cpu_percent_max"))
        row["loadgen_processes"] = loadgen.get("processes", [])
        row["published_per_s"], row["delivered_per_s"] = steady_rates(best.result) if best else (None, None)
    out_dir.mkdir(parents=True, exist_ok=True)
    objectives = [slo, capacity.ZERO_LOSS]
    (out_dir / capacity.CAPACITY_FILE).write_text(capacity_report.render_html(rows, "publish", objectives, out_dir))
    return rows


def steady_rates(result: dict[str, Any]) -> tuple[float | None, float | None]:
    """Published and delivered messages per second while the publishers ran (the warm-up and the stop
    second left out; the run's own figures divide by its whole length)."""
    series = [p for p in result.get("timeseries") or [] if p.get("published_per_s")]
    inner = series[1:-1] if len(series) >= 3 else series
    if not inner:
        return None, None
    count = len(inner)
    return (sum(p["published_per_s"] for p in inner) / count, sum(p["delivered_per_s"] for p in inner) / count)


def run_latency(plan: Plan, servers: list[str], out_dir: Path, quiet: bool, console: Console, pins: Pins
                ) -> dict[str, Any]:  # fmt: skip
    """Fan-out p50/p99 of every config at a few fixed offered loads (configs interleaved at each load),
    with the load generator's own saturation and loop lag beside them; then capacity at ``TIGHT_SLO``."""
    rows = []
    for load in plan.latency_loads:
        rate = plan.rate_for(load)
        options = _options(plan, pins, out_dir / f"at-{load}", quiet, rate=rate, seconds=plan.latency_s,
                           slo=SLO, part="latency")  # fmt: skip
        for request in config_requests(options, "publish", servers, (), SERVERS):
            request.out_dir = out_dir / f"at-{load}" / results.safe_name(request.name)
            console.print(f"latency: {request.name} at {load:,} deliveries/s ({rate:.3g} msg/s per publisher)")
            result, run_dir = runner.execute(request, console)
            fanout = (result.get("latency_ms") or {}).get("fanout") or {}
            lag = (result.get("latency_ms") or {}).get("loop_lag") or {}
            late = (result.get("latency_ms") or {}).get("send_lag") or {}
            loadgen = result.get("loadgen") or {}
            rows.append({
                "config": request.name, "offered_deliveries_per_s": load, "status": result.get("status"),
                "delivered_per_s": steady_rates(result)[1], "fanout_p50_ms": fanout.get("p50"),
                "fanout_p99_ms": fanout.get("p99"), "lost": (result.get("throughput") or {}).get("lost"),
                "loadgen_saturated": loadgen.get("saturated"), "loadgen_loop_lag_p99_ms": lag.get("p99"),
                "loadgen_send_lag_p99_ms": late.get("p99"), "run": str(run_dir),
            })  # fmt: skip
    tight = run_capacity(plan, servers, out_dir / "capacity-tight", quiet, console, pins, slo=TIGHT_SLO)
    return {"slo": TIGHT_SLO, "loads": list(plan.latency_loads), "rows": rows, "capacity": tight}


def run_loadgen(plan: Plan) -> dict[str, Any]:
    """Messages per CPU-second of one Locust process, ours and websocket-client, single-object frames."""
    from bench.harness import clientbench as loadbench

    clients: dict[str, Any] = {}
    for client in loadbench.CLIENTS:
        steps = asyncio.run(loadbench.measure(client, plan.bench_users, 1, list(plan.bench_rates), plan.bench_step_s))
        valid = [s for s in loadbench.valid_steps(steps, SATURATION_PERCENT) if s.cpu_percent > 5]
        best = loadbench.best_below(steps, SATURATION_PERCENT)
        clients[client] = {
            "msgs_per_cpu_s": max((s.per_cpu_second for s in valid), default=None),
            "highest_rate_below_90pct": best.received_per_s if best else None,
            "steps": [
                {"rate": s.rate, "received_per_s": s.received_per_s, "cpu_percent": s.cpu_percent} for s in steps
            ],
        }
    return {"users": plan.bench_users, "frame": "one message per frame", "clients": clients}


def run_cost(plan: Plan, servers: list[str], out_dir: Path, console: Console) -> list[dict[str, Any]]:
    """Server and load-generator CPU per delivered message at one offered load (``perf_cost``)."""
    from bench.harness import perf_cost
    from bench.harness.locust import LoadSpec

    warmup = plan.warmup_s()
    params = {"channels": str(plan.channels), "subscribers_per_channel": str(plan.subscribers),
              "publishers": str(plan.publishers), "rate": f"{plan.cost_rate:g}", "warmup": f"{warmup:g}"}  # fmt: skip
    load = LoadSpec("publish", plan.shape()["connections"], SPAWN_RATE, warmup + plan.cost_window_s + 2,
                    plan.processes, params)  # fmt: skip
    rows = []
    for server in servers:
        console.print(f"cost: {server} at {plan.cost_rate:g} msg/s per publisher", highlight=False)
        rows.append(perf_cost.measure(server, load, warmup, plan.cost_window_s, out_dir / results.safe_name(server)))
    return rows


def run_memory(plan: Plan, servers: list[str], out_dir: Path, console: Console) -> dict[str, Any]:
    from bench.harness import perf_memory

    server_rows = []
    for server in servers:
        console.print(f"memory: {plan.conns} idle subscribed connections on {server}", highlight=False)
        server_rows.append(perf_memory.server_bytes_per_connection(server, plan.conns, plan.warm))
    console.print(f"memory: our load generator at {plan.conns} connections", highlight=False)
    loadgen = perf_memory.loadgen_bytes_per_connection(plan.conns, plan.warm, out_dir / "loadgen-memory")
    return {"connections": plan.conns, "servers": server_rows, "loadgen": loadgen}


# --- the command -----------------------------------------------------------------------------------


def pins_for(server_cpus: str | None, loadgen_cpus: str | None, *, pin: bool) -> Pins:
    """The cores asked for, else (with ``pin``) the server on the first core and Locust on the others."""
    server, loadgen = parse_cpus(server_cpus, "--server-cpus"), parse_cpus(loadgen_cpus, "--loadgen-cpus")
    if pin and not server and not loadgen:
        server, loadgen = default_split()
    return Pins(server, loadgen)


def fit_processes(plan: Plan, pins: Pins) -> Plan:
    """At most one Locust process per load-generator core when pinned: processes sharing a core only
    take turns on it, and each one's wake-ups wait behind the other's."""
    if pins.loadgen and plan.processes > len(pins.loadgen):
        return replace(plan, processes=len(pins.loadgen))
    return plan


def run(plan: Plan, parts: list[str], servers: list[str], out_dir: Path, *, quiet: bool, command: str,
        quick: bool, console: Console, pins: Pins) -> dict[str, Any]:  # fmt: skip
    """Every part asked for, in order; writes perf.json and perf.html and returns the document."""
    report: dict[str, Any] = {
        "schema_version": results.SCHEMA_VERSION,
        "kind": "perf",
        "command": command,
        "quick": quick,
        "started_at": results.iso(datetime.now(UTC)),
        "environment": envinfo.collect(),
        "plan": plan.describe(),
        "pinning": pins.describe(),
        "parts": parts,
    }
    if "capacity" in parts:
        report["capacity"] = run_capacity(plan, servers, out_dir / "capacity", quiet, console, pins)
    if "latency" in parts:
        report["latency"] = run_latency(plan, servers, out_dir / "latency", quiet, console, pins)
    if "cost" in parts:
        report["cost"] = run_cost(plan, servers, out_dir / "cost", console)
    if "loadgen" in parts:
        report["loadgen"] = run_loadgen(plan)
    if "memory" in parts:
        report["memory"] = run_memory(plan, servers, out_dir, console)
    report["finished_at"] = results.iso(datetime.now(UTC))
    report["ratios"] = ratios(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PERF_JSON).write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / PERF_HTML).write_text(render_html(report))
    return report

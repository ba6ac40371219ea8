"""CPU cost per delivered message, of the server and of the load generator, at one fixed offered load.

On a machine that the server shares with its load generator (and other work), the capacity at a p99
objective moves with every other process's bursts; CPU-seconds per delivered message do not, and
they are what a capacity on a dedicated server is made of. Each config runs the capacity shape at
one rate; CPU is read from the server's process tree and the Locust processes over the publishing
seconds only (after the warm-up, before the stop).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil

from bench.harness.locust import AuthSpec, LoadSpec, LocustProcess
from bench.harness.servers import ManagedServer, resolve_spec

REDIS_PROCESS = "redis-server"


def _cpu_seconds(root: psutil.Process, only: str | None = None) -> float:
    """CPU-seconds of a process tree (``only``: of its processes of that name, e.g. a cluster's redis-server)."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            if only is not None and process.name() != only:
                continue
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def measure(
    config: str,
    load: LoadSpec,
    warmup_s: float,
    window_s: float,
    work_dir: Path,
    *,
    overrides: tuple[str, ...] = (),
    server_cpus: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Run ``load`` against ``config``; CPU per offered delivery over ``window_s`` after ``warmup_s`` (a
    cluster's redis-server counted in the server's and also on its own)."""
    spec = resolve_spec(config, overrides)
    auth = AuthSpec(auth="secret", password=spec.password, jwt_secret=spec.jwt_secret)
    with ManagedServer(spec, work_dir / "server.log", cpus=server_cpus) as server:
        locust = LocustProcess(load, auth, server.url, work_dir)
        locust.start()
        try:
            assert server.pid is not None and locust.pid is not None
            server_proc, locust_proc = psutil.Process(server.pid), psutil.Process(locust.pid)
            time.sleep(warmup_s + 1.0)  # the first publishing second is partial
            server_cpu, locust_cpu, started = _cpu_seconds(server_proc), _cpu_seconds(locust_proc), time.monotonic()
            redis_cpu = _cpu_seconds(server_proc, REDIS_PROCESS)
            time.sleep(window_s)
            elapsed = time.monotonic() - started
            server_cpu = _cpu_seconds(server_proc) - server_cpu
            redis_cpu = _cpu_seconds(server_proc, REDIS_PROCESS) - redis_cpu
            locust_cpu = _cpu_seconds(locust_proc) - locust_cpu
            while locust.poll() is None:
                time.sleep(0.2)
        finally:
            locust.stop(grace_s=10)
    metrics = locust.metrics() or {}
    throughput = metrics.get("throughput") or {}
    fanout = (metrics.get("latency_ms") or {}).get("fanout") or {}
    params = load.params
    receivers = int(params["subscribers_per_channel"]) + int(params["publishers"]) // int(params["channels"])
    offered = int(params["publishers"]) * float(params["rate"]) * receivers
    return {
        "config": config,
        "offered_deliveries_per_s": offered,
        "server_cpu_percent": 100 * server_cpu / elapsed,
        "server_us_per_delivery": 1e6 * server_cpu / elapsed / offered,
        "redis_cpu_percent": 100 * redis_cpu / elapsed,
        "redis_us_per_publish": 1e6 * redis_cpu / elapsed / (int(params["publishers"]) * float(params["rate"])),
        "loadgen_cpu_percent": 100 * locust_cpu / elapsed,
        "loadgen_us_per_delivery": 1e6 * locust_cpu / elapsed / offered,
        "lost": throughput.get("lost"),
        "fanout_p50_ms": fanout.get("p50"),
        "fanout_p99_ms": fanout.get("p99"),
    }

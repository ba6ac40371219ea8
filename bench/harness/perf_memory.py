"""Memory per idle subscribed connection, on the server (each config) and in our load generator.

Server side: ``bench.harness.memcheck`` (the server's RSS growth from a warm baseline to
``conns`` more subscribed connections), one fresh process per config so no figure carries another's heap.

Load-generator side: our Locust client itself (``scenarios/subscribe.py``, one process, gevent users)
against the bundled ``default`` server, twice: with ``warm`` users and with ``warm + conns`` users. Each
run holds until every user is connected and subscribed and the process's RSS has settled; the
difference of the two RSS figures divided by ``conns`` is what one more connection costs the load
generator (interpreter, Locust and imports cancel out).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import psutil

from bench.core.exceptions import LoadGenError, TargetError
from bench.harness import memcheck
from bench.harness.locust import AuthSpec, LoadSpec, LocustProcess
from bench.harness.servers import ManagedServer, resolve_spec

PER_CHANNEL: Final = 50  # members per channel while idle: presence at join stays bounded (50 x N events)
SPAWN_RATE: Final = 500.0
SETTLE_S: Final = 2.0
HOLD_LIMIT_S: Final = 120.0


def server_bytes_per_connection(server: str, conns: int, warm: int) -> dict[str, Any]:
    """memcheck's figure for one config, measured in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        result = pool.apply(memcheck.measure, (server, conns, warm, PER_CHANNEL))
    return asdict(result)


def _rss_when_settled(locust: LocustProcess, users: int, deadline: float) -> tuple[int, int]:
    """Wait until the live series shows ``users`` connections, then until the RSS stops moving."""
    connected = 0
    while connected < users:
        if locust.poll() is not None:
            raise LoadGenError(f"the load generator exited early: {locust.log_tail()}")
        if time.monotonic() > deadline:
            raise LoadGenError(f"only {connected} of {users} users connected within {HOLD_LIMIT_S:.0f} s")
        for point in locust.new_points():
            connected = max(connected, int(point.get("connections") or 0))
        time.sleep(0.2)
    assert locust.pid is not None
    process = psutil.Process(locust.pid)
    time.sleep(SETTLE_S)
    previous = process.memory_info().rss
    for _ in range(10):
        time.sleep(0.5)
        current = process.memory_info().rss
        if abs(current - previous) <= previous // 200:
            return current, connected
        previous = current
    return previous, connected


def _locust_rss(url: str, auth: AuthSpec, users: int, work_dir: Path) -> tuple[int, int]:
    channels = max(1, users // PER_CHANNEL)
    load = LoadSpec(
        "subscribe", users, SPAWN_RATE, HOLD_LIMIT_S + 30, 1, {"channels": str(channels), "channels_per_user": "1"}
    )
    locust = LocustProcess(load, auth, url, work_dir)
    locust.start()
    try:
        return _rss_when_settled(locust, users, time.monotonic() + HOLD_LIMIT_S)
    finally:
        locust.stop(grace_s=10)


def loadgen_bytes_per_connection(conns: int, warm: int, work_dir: Path) -> dict[str, Any]:
    """Our Locust client's RSS growth per idle subscribed connection (see the module docstring)."""
    memcheck.raise_open_file_limit(2 * (conns + warm) + 256)
    spec = resolve_spec("default")
    auth = AuthSpec(auth="secret", password=spec.password, jwt_secret=spec.jwt_secret)
    with ManagedServer(spec, work_dir / "server.log") as server:
        before, _ = _locust_rss(server.url, auth, warm, work_dir / "warm")
        if server.poll() is not None:
            raise TargetError("the server died while measuring the load generator's memory")
        after, connected = _locust_rss(server.url, auth, warm + conns, work_dir / "full")
    return {
        "client": "ours (scenarios/subscribe.py, one Locust process)",
        "connections": conns,
        "warm": warm,
        "rss_warm": before,
        "rss_full": after,
        "connected": connected,
        "bytes_per_conn": (after - before) / conns,
    }

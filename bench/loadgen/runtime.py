"""Wiring into Locust's events: one ``Run`` per process per test, and the result file at the end.

- Every process that runs users (local, or a worker) keeps a ``Recorder``; a ticker greenlet closes
  each second (time-series point, own CPU, Locust stats fed in aggregate: one stats update per name
  and second instead of one event per message).
- Workers attach ``Recorder.partial()`` to Locust's ``report_to_master``; the master adds them up in
  an ``Aggregate`` on ``worker_report``. A local process adds its own partials directly.
- At stop (``test_stopping``), publishers stop and receivers drain in-flight messages before Locust
  stops the users. In a distributed run the master's ``test_stopping`` asks each worker to drain and
  send its final partial (custom messages ``chatbench_stop`` / ``chatbench_final``) and waits for
  them, because a headless master fires ``test_stop`` before its workers hear of the stop.
- A worker says which scenario it was started for (``chatbench_hello``) as it joins; a master running
  another one sends it home (``chatbench_refused``: the worker logs why and exits 2) before it is given
  users, and logs the refusal for the harness.
- The master (or the local process) then writes ``$BENCH_METRICS_OUT``, also when the run is
  aborted (``quitting``). ``$BENCH_LIVE_OUT`` gets one JSON line per completed second.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import gevent
import numpy as np
import orjson
import psutil
from locust import events
from locust.env import Environment
from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner, WorkerNode, WorkerNodes, WorkerRunner

from bench.core.exceptions import BenchError
from bench.core.histogram import Histogram
from bench.core.schema import LIVE_ENV, METRICS_ENV, WORKER_GREETED, WORKER_REFUSED
from bench.loadgen import webui
from bench.loadgen.metrics import Aggregate, Recorder, first_tick_at
from bench.loadgen.options import COMMON, Option, collect, register, secret_free
from bench.loadgen.wire import Wire, require, wire_for
from bench.loadgen.wirekit import read_settings

T = TypeVar("T")
logger = logging.getLogger("chatbench.scenarios")
REPORT_KEY = "chatbench"
STATS_METHOD = "WS"
FINAL_WAIT_S = 5.0  # beyond the drain time, for the workers' final partials
STOP_MESSAGE = "chatbench_stop"
CLOCK_MESSAGE = "chatbench_clock"
FINAL_MESSAGE = "chatbench_final"
HELLO_MESSAGE = "chatbench_hello"
REFUSED_MESSAGE = "chatbench_refused"
MASTER_LIVE_LAG_S = WORKER_REPORT_INTERVAL + 1.5
LAG_PROBE_S: Final = 0.01  # the loop-lag probe's sleep


class GreetedWorkers(WorkerNodes):
    """The master's workers, where a worker is ready only once it has said it runs this scenario
    (``HELLO_MESSAGE``). Locust starts a headless run as soon as ``--expect-workers`` are ready, and a
    worker is ready from its ``client_ready`` on, before its hello: a worker about to be refused would
    count, and the run would go on without it and end "ok" with no load."""

    def __init__(self, nodes: WorkerNodes) -> None:
        super().__init__()
        self.greeted: set[str] = set()
        for node_id in nodes:
            self[node_id] = nodes[node_id]

    @property
    def ready(self) -> list[WorkerNode]:
        return [node for node in super().ready if node.id in self.greeted]


def wire_from(params: dict[str, Any]) -> Wire:
    """The wire ``--protocol`` names, set up by ``--wire-config`` and ``--wire-set``."""
    name = params["protocol"]
    return wire_for(name, read_settings(params["wire-config"], name, params["wire-set"]))


def locust_buckets(hist: Histogram) -> list[tuple[int, int]]:
    """The histogram in Locust's response-time buckets (``locust.stats.bucket_response_time`` of each
    bucket's top, in ms: whole ms below 100, then 2 significant digits), regrouped with numpy: thousands of
    buckets a second, one Python call each, stalled the loop for milliseconds."""
    tops, counts = hist.bucket_arrays()
    ms = tops / 1000
    digits = np.select([ms < 100, ms < 1000, ms < 10000], [0, -1, -2], -3)
    rounded = np.round(ms * 10.0**digits) / 10.0**digits  # what round(ms, digits) gives, per bucket
    keys, inverse = np.unique(rounded.astype(np.int64), return_inverse=True)
    sums = np.bincount(inverse, weights=counts, minlength=keys.size).astype(np.int64)
    return [(int(k), int(n)) for k, n in zip(keys, sums, strict=True)]


def feed_locust_stats(environment: Environment, name: str, hist: Histogram) -> None:
    """Add one second of samples to Locust's stats entry ``WS name`` (and the total) in one step."""
    buckets = locust_buckets(hist)
    if not buckets:
        return
    now = time.time()
    count = sum(c for _, c in buckets)
    total_ms = hist.mean * count / 1000
    stats = environment.stats
    for entry in (stats.get(name, STATS_METHOD), stats.total):
        last = entry.last_request_timestamp
        if entry.use_response_times_cache and last and int(now) > int(last):
            entry._cache_response_times(int(now) - 1)  # what StatsEntry.log does: feeds the web UI's charts
        entry.num_requests += count
        entry.num_reqs_per_sec[int(now)] += count
        entry.last_request_timestamp = now
        # Locust declares these int but accepts floats, which keep sub-millisecond detail.
        entry.total_response_time += total_ms  # type: ignore[assignment]
        low, high = hist.min / 1000, hist.max / 1000
        entry.min_response_time = low if entry.min_response_time is None else min(entry.min_response_time, low)  # type: ignore[assignment]
        entry.max_response_time = max(entry.max_response_time, high)  # type: ignore[assignment]
        for bucket_ms, n in buckets:
            entry.response_times[bucket_ms] += n


class Run:
    """This process's part of one test: recorder (if it runs users), aggregate (if it reports)."""

    def __init__(self, environment: Environment, scenario: str, options: tuple[Option, ...]) -> None:
        self.environment = environment
        self.scenario = scenario
        self.options = options
        runner = environment.runner
        self.is_master = isinstance(runner, MasterRunner)
        self.is_worker = isinstance(runner, WorkerRunner)
        self.role = "master" if self.is_master else "worker" if self.is_worker else "local"
        self.params = collect(environment.parsed_options, COMMON + options)
        self.wire = wire_from(self.params)
        self.recorder = Recorder(role=self.role)
        self.aggregate = Aggregate(scenario, secret_free(self.params))
        self.started = time.time()
        self.stopping = False
        self.stopped = False
        self.written = False
        self.next_user: dict[str, int] = {}
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._ticker: gevent.Greenlet[Any, Any] | None = None
        self._lag_probe: gevent.Greenlet[Any, Any] | None = None
        self._live_sec = 0
        self.drain_checks: list[Callable[[], bool]] = []
        self.sync_clock = self.params["clock-sync"] == "server" or (
            self.params["clock-sync"] == "auto" and _SEVERAL_HOSTS
        )
        self.aggregate.clock_sync = "server" if self.sync_clock else "none"

    def announce_hosts(self) -> None:
        """On the master, before users are dispatched: tell workers whether they span several hosts."""
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner):
            return
        hosts = {client.id.rsplit("_", 1)[0] for client in runner.clients.values()}
        several = len(hosts) > 1
        runner.send_message(CLOCK_MESSAGE, {"several_hosts": several})
        if self.params["clock-sync"] == "auto":
            self.sync_clock = several
            self.aggregate.clock_sync = "server" if several else "none"

    # -- identity of users across processes ------------------------------------------------

    @property
    def worker_index(self) -> int:
        return max(0, int(getattr(self.environment.runner, "worker_index", 0)))

    @property
    def worker_count(self) -> int:
        if not self.is_worker:
            return 1
        return max(1, int(getattr(self.environment.parsed_options, "expect_workers", 1) or 1))

    def claim_user(self, kind: str = "") -> tuple[int, str]:
        """A run-wide index among users of ``kind`` (interleaved across workers) and a unique user id."""
        n = self.next_user.get(kind, 0)
        self.next_user[kind] = n + 1
        prefix = self.params["user-prefix"]
        return n * self.worker_count + self.worker_index, f"{prefix}{self.worker_index}-{kind}{n}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._ticker = gevent.spawn(self._tick_forever)
        if not self.is_master:  # the processes that run users: is their loop late to wake them?
            self._lag_probe = gevent.spawn(self._probe_loop_lag)

    def _probe_loop_lag(self) -> None:
        """Sleep ``LAG_PROBE_S`` over and over and record the overshoot: a load generator whose loop is
        late to wake its greenlets adds that to every latency it measures, and this says by how much."""
        record = self.recorder.record
        while True:
            asleep = time.perf_counter()
            gevent.sleep(LAG_PROBE_S)
            record("loop_lag", max(0, int((time.perf_counter() - asleep - LAG_PROBE_S) * 1e6)))

    def _tick_forever(self) -> None:
        next_at = first_tick_at(time.time())
        while True:
            gevent.sleep(max(0.0, next_at - time.time()))
            self.tick(next_at, pause=gevent.sleep)
            next_at += 1.0

    def tick(self, now: float, pause: Callable[[], object] = lambda: None) -> None:
        """Close the second before ``now``; ``pause()`` between the parts (the ticker's yield to the
        reader; the final tick at stop runs straight through)."""
        # A full collection walks every tracked object: with a thousand users' state that stalled a
        # worker for 12-44 ms every few seconds, and every message in flight showed the stall as
        # latency. Freezing what is alive each second leaves the collector only the last second's
        # objects (messages are freed by reference counting; cyclic garbage is young and caught first).
        gc.freeze()
        cpu = self._process.cpu_percent(None)
        if self.is_master:
            self.recorder.cpu_samples.append(cpu)
            self._emit_live(int(now - MASTER_LIVE_LAG_S))
            return
        runner = self.environment.runner
        users = runner.user_count if runner is not None else 0
        second = self.recorder.tick(now - 1.0, users=users, cpu_percent=cpu)
        # The parts of a tick add up to milliseconds; between them the reader gets the loop (what
        # arrives meanwhile is the next second's), so no message waits behind the whole tick.
        for name, hist in second.items():
            if hist.count:
                pause()
                feed_locust_stats(self.environment, name, hist)
        if not self.is_worker:
            pause()
            self.aggregate.add(self.recorder.partial())
            self._emit_live(int(now))

    def _emit_live(self, upto_sec: int) -> None:
        path = os.environ.get(LIVE_ENV)
        if not path:
            return
        points = [p for p in self.aggregate.timeseries(self._live_sec, settle=False) if p["epoch_s"] < upto_sec]
        if not points:
            return
        self._live_sec = points[-1]["epoch_s"]
        with open(path, "ab") as handle:
            for point in points:
                handle.write(orjson.dumps(point) + b"\n")

    def drain(self) -> None:
        """Publishers stop (``stopping``); wait until receivers have what was sent, or the drain time."""
        self.stopping = True
        deadline = time.time() + float(self.params["drain-seconds"])
        quiet_since = time.time()
        delivered = self.recorder.delivered
        while time.time() < deadline:
            gevent.sleep(0.05)
            now_delivered = self.recorder.delivered
            if now_delivered != delivered:
                delivered, quiet_since = now_delivered, time.time()
            settled = all(check() for check in self.drain_checks)
            if settled and time.time() - quiet_since > 0.25:
                break

    def stop(self) -> None:
        """Close the last second and, locally, add the final partial; idempotent."""
        for greenlet in (self._ticker, self._lag_probe):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._ticker = self._lag_probe = None
        if self.is_master or self.stopped:
            return
        self.tick(time.time() + 1.0)
        self.stopped = True
        if not self.is_worker:
            self.aggregate.add(self.recorder.partial(final=True))

    def final_partial(self) -> dict[str, Any]:
        """On a worker asked to stop: drain, close the recorder, hand over everything left."""
        self.drain()
        self.stop()
        return self.recorder.partial(final=True)

    def collect_finals(self) -> None:
        """On the master: ask every worker for its final partial and wait for them."""
        runner = self.environment.runner
        if not isinstance(runner, MasterRunner) or self.stopped:
            return
        self.stopped = True
        expected = len(runner.clients.all)
        runner.send_message(STOP_MESSAGE)
        deadline = time.time() + float(self.params["drain-seconds"]) + FINAL_WAIT_S
        while len(self.aggregate.final_pids) < expected and time.time() < deadline:
            gevent.sleep(0.1)
        if len(self.aggregate.final_pids) < expected:
            logger.warning(
                "%d of %d workers sent their final measurements; the result is partial",
                len(self.aggregate.final_pids),
                expected,
            )

    def write_result(self) -> None:
        if self.written:
            return
        self.written = True
        if self.is_master and self.recorder.cpu_samples:
            cpu = self.recorder.cpu_samples
            self.aggregate.processes[(self.recorder.host, self.recorder.pid)] = {
                "pid": self.recorder.pid,
                "host": self.recorder.host,
                "role": "master",
                "cpu_percent_max": round(max(cpu), 1),
                "cpu_percent_mean": round(sum(cpu) / len(cpu), 1),
                "clock": None,
            }
        result = self.aggregate.result(saturated_at=float(self.params["saturation-percent"]))
        self._emit_live(2**62)
        path = os.environ.get(METRICS_ENV)
        if path:
            tmp = f"{path}.tmp"
            with open(tmp, "wb") as handle:
                handle.write(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
            os.replace(tmp, path)
            logger.info("chatbench metrics written to %s", path)
        throughput = result["throughput"]
        logger.info(
            "chatbench %s: published %s delivered %s expected %s lost %s duplicated %s reordered %s",
            self.scenario,
            throughput["published"],
            throughput["delivered"],
            throughput["expected_deliveries"],
            throughput["lost"],
            throughput["duplicated"],
            throughput["reordered"],
        )


_RUN: Run | None = None
_SEVERAL_HOSTS = False  # told by the master (CLOCK_MESSAGE) before the test starts on a worker


def live_integrity() -> dict[str, Any]:
    """Integrity so far in this run (the web UI's tab); zeros before the first test starts."""
    if _RUN is None:
        return {}
    return _RUN.aggregate.live_integrity()


def _exit_on_error(check: Callable[[], T]) -> T:
    """``check()``, or exit 2 with its error as argparse words it (the harness reports it as a usage error)."""
    try:
        return check()
    except BenchError as exc:
        print(f"locust: error: argument --protocol: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def current() -> Run:
    """The Run of this process (users call this in on_start)."""
    if _RUN is None:
        raise RuntimeError("bench.loadgen.runtime.install() was not called by the locustfile")
    return _RUN


def install(
    scenario: str,
    options: tuple[Option, ...],
    configure: Callable[[dict[str, Any]], None] | None = None,
    prepare: Callable[[Run], None] | None = None,
    needs: frozenset[str] | Callable[[dict[str, Any]], frozenset[str]] = frozenset(),
) -> None:
    """Register the scenario's options and the measurement lifecycle; call once in a locustfile.

    ``configure(params)`` runs on every node at test start before users are dispatched (e.g. to set
    ``fixed_count`` from the parameters); ``prepare(run)`` runs once, on the master or the local
    process, before users start (e.g. to seed history); ``needs(params)`` names the wire capabilities the
    scenario needs (``bench.loadgen.wire``): a protocol without them exits 2 at start, saying so.
    """

    def _options(parser: Any) -> None:
        register(parser, COMMON + options)

    def _test_start(environment: Environment, **_: Any) -> None:
        global _RUN
        _RUN = Run(environment, scenario, options)
        if configure is not None:
            configure(_RUN.params)
        if prepare is not None and not _RUN.is_worker:
            prepare(_RUN)
        _RUN.announce_hosts()
        _RUN.start()

    def _test_stopping(environment: Environment, **_: Any) -> None:
        if _RUN is None:
            return
        if _RUN.is_master:
            _RUN.collect_finals()
        else:
            _RUN.drain()

    def _test_stop(environment: Environment, **_: Any) -> None:
        if _RUN is None:
            return
        _RUN.stop()
        if not _RUN.is_worker:
            _RUN.write_result()

    def _report(client_id: str, data: dict[str, Any]) -> None:
        if _RUN is not None and _RUN.is_worker and not _RUN.stopped:
            data[REPORT_KEY] = _RUN.recorder.partial()

    def _worker_report(client_id: str, data: dict[str, Any]) -> None:
        if _RUN is not None and REPORT_KEY in data:
            _RUN.aggregate.add(data[REPORT_KEY])

    def _on_stop_request(environment: Environment, msg: Any, **_: Any) -> None:
        if _RUN is not None and environment.runner is not None:  # answer even if stopped already
            environment.runner.send_message(FINAL_MESSAGE, _RUN.final_partial())

    def _on_clock(environment: Environment, msg: Any, **_: Any) -> None:
        global _SEVERAL_HOSTS
        _SEVERAL_HOSTS = bool(msg.data.get("several_hosts"))

    def _on_final(environment: Environment, msg: Any, **_: Any) -> None:
        if _RUN is not None:
            _RUN.aggregate.add(msg.data)

    def _on_hello(environment: Environment, msg: Any, **_: Any) -> None:
        theirs = (msg.data or {}).get("scenario")
        runner = environment.runner
        if runner is None:
            return
        if theirs == scenario:
            clients = getattr(runner, "clients", None)
            if isinstance(clients, GreetedWorkers):
                clients.greeted.add(msg.node_id)
                logger.info("%s %s, %d ready", WORKER_GREETED, msg.node_id, len(clients.ready))
            return
        reason = (f"{WORKER_REFUSED} {msg.node_id} was started for scenario {theirs!r} but this run is "
                  f"{scenario!r}; start it as `bench worker --master HOST:PORT {scenario}`")  # fmt: skip
        logger.error(reason)
        runner.send_message(REFUSED_MESSAGE, {"reason": reason}, client_id=msg.node_id)

    def _on_refused(environment: Environment, msg: Any, **_: Any) -> None:
        logger.error("%s", (msg.data or {}).get("reason", f"{WORKER_REFUSED} by the master"))
        environment.process_exit_code = 2  # a usage error: the wrong scenario for this master
        if environment.runner is not None:
            environment.runner.quit()

    def _init(environment: Environment, **_: Any) -> None:
        if environment.parsed_options is not None:
            params = collect(environment.parsed_options, COMMON + options)
            wire = _exit_on_error(lambda: wire_from(params))
            needed = needs(params) if callable(needs) else needs
            _exit_on_error(lambda: require(wire, needed, scenario))
        webui.install(environment, live_integrity)
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            runner.clients = GreetedWorkers(runner.clients)
            runner.register_message(FINAL_MESSAGE, _on_final)
            runner.register_message(HELLO_MESSAGE, _on_hello)
        elif isinstance(runner, WorkerRunner):
            runner.register_message(STOP_MESSAGE, _on_stop_request, concurrent=True)
            runner.register_message(CLOCK_MESSAGE, _on_clock)
            runner.register_message(REFUSED_MESSAGE, _on_refused, concurrent=True)
            runner.send_message(HELLO_MESSAGE, {"scenario": scenario})

    def _quitting(environment: Environment, **_: Any) -> None:
        if _RUN is not None and not _RUN.is_worker and not _RUN.written:
            _RUN.stop()
            _RUN.write_result()

    listeners: list[tuple[Any, Callable[..., None]]] = [
        (events.init_command_line_parser, _options),
        (events.init, _init),
        (events.test_start, _test_start),
        (events.test_stopping, _test_stopping),
        (events.test_stop, _test_stop),
        (events.report_to_master, _report),
        (events.worker_report, _worker_report),
        (events.quitting, _quitting),
    ]
    for hook, listener in listeners:
        hook.add_listener(listener)

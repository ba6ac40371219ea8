"""What one load-generating process measures (``Recorder``), and how partial reports add up (``Aggregate``).

Hot path: ``record(name, us)`` appends to the current second's histogram; ``tick()`` (once a second)
turns that second into a time-series point, folds it into the cumulative histograms and the
not-yet-reported ones, and returns the per-second histograms (for Locust's own stats).

Every process, the single local one included, hands ``Recorder.partial()`` (deltas since its last
partial, JSON-safe, histograms encoded) to an ``Aggregate``: on a worker through Locust's
``report_to_master``, locally by a direct call. ``Aggregate.result()`` builds the result dict.
"""

from __future__ import annotations

import base64
import math
import os
import socket
import time
import zlib
from collections import defaultdict, deque
from typing import Any, Final

import numpy as np

from bench.core.histogram import Histogram
from bench.core.schema import LATENCY_NAMES, SATURATION_PERCENT
from bench.loadgen.integrity import LEAVE_BOUNDARY_US, Sends, Window, expected_for_windows
from bench.loadgen.storm import storm_summary

LIVE_INTEGRITY: Final = ("duplicated", "reordered", "gaps")
POINT_COUNTERS: Final = ("published", "delivered", "errors", "connect_attempts", "pages")
LAST_RECEIVER_SETTLE_S: Final = 5.0  # a message's last receiver is final once it is this old
SETTLED_AFTER_S: Final = 30.0  # on the aggregating side, nothing older than this can still change
LAST_RECEIVER_MERGE_S: Final = 15.0  # settled per process after 5 s, reported every 3 s

Node = tuple[str, int]  # (host, pid): one load-generating process, wherever it runs


def node_of(partial: dict[str, Any]) -> Node:
    """Which process sent a partial (``host`` is absent from partials of older versions)."""
    return str(partial.get("host", "")), int(partial["pid"])


def first_tick_at(now: float) -> float:
    """When the per-second ticker first fires: on a whole wall-clock second, so that the point keyed S holds
    exactly [S, S+1), the same second in every process, and an orchestrator event at epoch E falls in the
    point keyed int(E); at least 0.5 s away, since CPU measured over a few milliseconds of start-up would
    read as saturation (the first point spans 0.5 to 1.5 s)."""
    at = math.floor(now) + 1.0
    return at + 1.0 if at - now < 0.5 else at


def encode_ids(ids: list[int], *, keep_order: bool = False) -> str:
    """Message ids (or a stream's send times, ``keep_order``) as zlib-compressed int64 deltas."""
    array = np.asarray(ids, dtype=np.int64)
    if not keep_order:
        array = np.sort(array)
    deltas = np.diff(array, prepend=np.int64(0))
    return base64.b64encode(zlib.compress(deltas.astype("<i8").tobytes(), 6)).decode("ascii")


def decode_ids(data: str) -> list[int]:
    deltas = np.frombuffer(zlib.decompress(base64.b64decode(data)), dtype="<i8")
    return [int(v) for v in np.cumsum(deltas)]


class SlowestReceiver:
    """Per message (its tag), the slowest receipt so far; entries leave in arrival order once old,
    so settling costs only what it settles. Ints, strings and tuples of them only: the garbage
    collector does not track them, which matters at hundreds of thousands of entries. A receipt
    slower than the known one only replaces an int (no allocation): the intended time, the same for
    every receipt of a tag, is kept once, with the arrival order."""

    __slots__ = ("_order", "latest")

    def __init__(self) -> None:
        self.latest: dict[str, int] = {}  # tag -> slowest latency us
        self._order: deque[tuple[str, int]] = deque()  # (tag, intended_us) in arrival order

    def note(self, tag: str, intended_us: int, latency_us: int) -> None:
        latest = self.latest
        known = latest.get(tag)
        if known is None:
            latest[tag] = latency_us
            self._order.append((tag, intended_us))
        elif latency_us > known:
            latest[tag] = latency_us

    def settle(self, horizon_us: float) -> list[tuple[str, int, int]]:
        """Remove and return ``(tag, intended_us, latency_us)`` of messages intended before the horizon."""
        out = []
        order, latest = self._order, self.latest
        while order and order[0][1] < horizon_us:
            tag, intended_us = order.popleft()
            out.append((tag, intended_us, latest.pop(tag)))
        return out

    def __len__(self) -> int:
        return len(self.latest)


class Recorder:
    """One process's measurements. Single-threaded (gevent): no locks."""

    def __init__(self, *, role: str = "local", clock: float | None = None) -> None:
        self.role = role
        self.pid = os.getpid()
        self.host = socket.gethostname()  # pids are unique per host only: workers may run anywhere
        cores = sorted(os.sched_getaffinity(0))
        self.core_set = (f"{self.host}:{','.join(map(str, cores))}", len(cores))  # processes on it share it
        self.started = time.time() if clock is None else clock
        self.current: dict[str, Histogram] = defaultdict(Histogram)  # this second's samples
        self.delivered = 0  # the hottest counter, kept as a plain attribute
        self._delivered_at_tick = 0
        self.slowest = SlowestReceiver()  # for fanout_last_receiver
        self._unreported: dict[str, Histogram] = defaultdict(Histogram)
        self.totals: dict[str, Histogram] = defaultdict(Histogram)
        self.counters: dict[str, int] = defaultdict(int)
        self._second: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self._errors_unreported: dict[str, int] = defaultdict(int)
        self.connections = 0
        self.peak_connections = 0
        self._open_windows: set[Window] = set()
        self._window_reports: list[dict[str, Any]] = []
        self._closed_live: list[dict[str, int]] = []  # closed windows' counts, for ``live_integrity``
        self._acked: dict[str, list[int]] = defaultdict(list)
        self._sent: dict[str, int] = defaultdict(int)
        self._not_accepted: dict[str, list[tuple[str, int]]] = defaultdict(list)  # channel -> (stream, seq)
        self._sends: dict[str, dict[str, list[int]]] = defaultdict(dict)  # channel -> stream -> [seq0, t...]
        self._points: list[dict[str, Any]] = []
        self._storm_users: list[dict[str, Any]] = []
        self.history: dict[str, int] = defaultdict(int)
        self.cpu_samples: list[float] = []
        self.clock_samples: list[tuple[float, float]] = []  # (rtt_ms, offset_ms)
        self.clock_offset_us = 0  # server clock minus ours, from the sample with the lowest round trip
        self._best_rtt_ms = float("inf")

    # -- hot path ----------------------------------------------------------------------------

    def record(self, name: str, value_us: int) -> None:
        self.current[name].record(value_us)

    def count(self, name: str, n: int = 1) -> None:
        if name == "delivered":
            self.delivered += n
            return
        self.counters[name] += n
        self._second[name] += n

    def error(self, reason: str) -> None:
        self.errors[reason] += 1
        self._errors_unreported[reason] += 1
        self._second["errors"] += 1

    # -- connections, windows, publishes ----------------------------------------------------

    def connection_opened(self) -> None:
        self.connections += 1
        self.counters["opened"] += 1
        self.peak_connections = max(self.peak_connections, self.connections)

    def connection_closed(self) -> None:
        self.connections -= 1
        self.counters["closed"] += 1

    def open_window(
        self,
        channel: str,
        start_id: int | None,
        *,
        subscribe_sent_us: int = 0,
        confirmed_us: int = 0,
        own_prefix: str | None = None,
    ) -> Window:
        window = Window(channel, start_id, subscribe_sent_us, confirmed_us, own_prefix)
        self._open_windows.add(window)
        return window

    def close_window(self, window: Window, left_us: int | None = None) -> None:
        """The user left the channel before the end of the run (at ``left_us``, tag clock)."""
        if window in self._open_windows:
            self._open_windows.discard(window)
            window.close(left_us)
            report = window.report()
            self._window_reports.append(report)
            self._closed_live.append({key: report[key] for key in LIVE_INTEGRITY})

    def finish_windows(self) -> None:
        """The run ends: every window still open stayed to the end (``end_id`` None)."""
        for window in self._open_windows:
            self._window_reports.append(window.report())
        self._open_windows.clear()

    def published(self, channel: str) -> None:
        self._sent[channel] += 1
        self.count("published")

    def send_time(self, channel: str, publisher: str, seq: int, sent_us: int) -> None:
        """When ``publisher``'s message ``seq`` went (tag clock; 0: its send failed), for ``send_times``."""
        stream = self._sends[channel].get(publisher)
        if stream is None:
            self._sends[channel][publisher] = [seq, sent_us]
        else:
            stream.append(sent_us)

    def acked(self, channel: str, message_id: object) -> None:
        if isinstance(message_id, int):
            self._acked[channel].append(message_id)

    def not_accepted(self, channel: str, publisher: str, seq: int) -> None:
        """A publish the server never took (its connection broke first; not in the history after)."""
        self._not_accepted[channel].append((publisher, seq))
        self.count("not_accepted")

    def storm_user(self, down_s: float, back_s: float | None, attempts: int) -> None:
        """One user's outage in a reconnect storm (epoch seconds; ``back_s`` None: gave up)."""
        self._storm_users.append({"down": down_s, "back": back_s, "attempts": attempts})

    def clock_sample(self, sent_s: float, server_ms: float, received_s: float) -> None:
        """An NTP-style sample against the server's clock (its ``timestamp`` field, ms)."""
        rtt_ms = (received_s - sent_s) * 1000
        offset_ms = server_ms - (sent_s + received_s) * 500
        if len(self.clock_samples) < 256:
            self.clock_samples.append((rtt_ms, offset_ms))
        if rtt_ms < self._best_rtt_ms:
            self._best_rtt_ms = rtt_ms
            self.clock_offset_us = int(offset_ms * 1000)

    # -- once a second -------------------------------------------------------------------------

    def tick(self, now: float, *, users: int, cpu_percent: float) -> dict[str, Histogram]:
        """Close the current second: one time-series point; returns that second's histograms."""
        second, self.current = self.current, defaultdict(Histogram)
        counts, self._second = self._second, defaultdict(int)
        counts["delivered"] = self.delivered - self._delivered_at_tick
        self._delivered_at_tick = self.delivered
        fanout = second.get("fanout")
        point: dict[str, Any] = {
            "sec": int(now),
            "users": users,
            "connections": self.connections,
            "cpu_percent": cpu_percent,
            "core_set": self.core_set,
            **{name: counts.get(name, 0) for name in POINT_COUNTERS},
            "fanout": fanout.encode() if fanout is not None and fanout.count else None,
        }
        self._points.append(point)
        self.cpu_samples.append(cpu_percent)
        for name, hist in second.items():
            if hist.count:
                self.totals[name].merge(hist)
                self._unreported[name].merge(hist)
        return second

    def partial(self, *, final: bool = False) -> dict[str, Any]:
        """Everything measured since the last partial, JSON-safe (the report_to_master payload)."""
        if final:
            self.finish_windows()
        horizon_us = float("inf") if final else (time.time() - LAST_RECEIVER_SETTLE_S) * 1e6
        settled = {tag: [intended_us, latency_us] for tag, intended_us, latency_us in self.slowest.settle(horizon_us)}
        data = {
            "pid": self.pid,
            "host": self.host,
            "role": self.role,
            "final": final,
            "hists": {name: hist.encode() for name, hist in self._unreported.items() if hist.count},
            "counters": {**self.counters, "delivered": self.delivered},
            "errors": dict(self._errors_unreported),
            "peak_connections": self.peak_connections,
            "windows": self._window_reports,
            "acked": {channel: encode_ids(ids) for channel, ids in self._acked.items() if ids},
            "sent": dict(self._sent),
            "not_accepted": {channel: [list(key) for key in keys] for channel, keys in self._not_accepted.items()},
            "sends": {
                channel: {p: [times[0], encode_ids(times[1:], keep_order=True)] for p, times in streams.items()}
                for channel, streams in self._sends.items()
            },
            "last_receiver": settled,
            "points": self._points,
            "storm_users": self._storm_users,
            "history": dict(self.history),
            "cpu": self.cpu_samples[:],
            "clock": self.clock_summary(),
            "live": self.live_integrity(),
        }
        self._unreported = defaultdict(Histogram)
        self._errors_unreported = defaultdict(int)
        self._window_reports = []
        self._acked = defaultdict(list)
        self._not_accepted = defaultdict(list)
        self._sends = defaultdict(dict)
        self._points = []
        self._storm_users = []
        return data

    def live_integrity(self) -> dict[str, int]:
        """Integrity so far, for the live view: open windows' counts, and gaps (missing now) as losses."""
        totals = dict.fromkeys(LIVE_INTEGRITY, 0)
        for window in self._open_windows:
            totals["duplicated"] += window.duplicated
            totals["reordered"] += window.reordered
            totals["gaps"] += window.gaps
        for report in self._closed_live:
            for key in LIVE_INTEGRITY:
                totals[key] += report[key]
        return totals

    def clock_summary(self) -> dict[str, Any] | None:
        """The offset to the server's clock from the sample with the lowest round trip."""
        if not self.clock_samples:
            return None
        rtt_ms, offset_ms = min(self.clock_samples)
        return {"offset_ms": round(offset_ms, 3), "rtt_ms": round(rtt_ms, 3), "samples": len(self.clock_samples)}


INTEGRITY_NOTES: Final = {
    "server_ids": "owed every acknowledged id on the channel after SUBSCRIBED's lastMessageId (exact)",
    "send_times": "owed every message sent after the receiver's confirmation and before it left, by the tags' "
    "send times; sent between its SUBSCRIBE and the confirmation, or in the last "
    f"{LEAVE_BOUNDARY_US // 1000} ms before it left: uncertain, not lost",
}


def integrity_summary(method: str | None, methods: dict[str, int], uncertain: int) -> dict[str, Any]:
    """result.json's ``integrity``: how the windows were determined, and the boundary's count."""
    return {
        "method": method,
        "windows": dict(sorted(methods.items())),
        "uncertain": uncertain,
        "leave_boundary_ms": LEAVE_BOUNDARY_US // 1000,
        "notes": {name: INTEGRITY_NOTES[name] for name in sorted(methods) if name in INTEGRITY_NOTES},
    }


def _shared_cores(core_sets: dict[str, list[Any]]) -> dict[str, float]:
    """``cpu_percent_of_shared_cores``: where several processes share cores (``--processes 2`` pinned to
    one core), their summed CPU as a share of what they can use (one core per process at most), for the
    busiest such set; absent when no two share a core. Each process alone may stay under the saturation
    line while together they fill their core."""
    shares = [total / cores for total, n, cores in core_sets.values() if n > cores]
    return {"cpu_percent_of_shared_cores": round(max(shares), 1)} if shares else {}


class Aggregate:
    """Partials from every process of one run, added up (on the master, or in the local process)."""

    def __init__(self, scenario: str, params: dict[str, Any]) -> None:
        self.scenario = scenario
        self.params = params
        self.started = time.time()
        self.hists: dict[str, Histogram] = defaultdict(Histogram)
        self.counters: dict[Node, dict[str, int]] = {}
        self.errors: dict[str, int] = defaultdict(int)
        self.peaks: dict[Node, int] = {}
        self.windows: list[dict[str, Any]] = []
        self.acked: dict[str, list[int]] = defaultdict(list)
        self.sent: dict[tuple[Node, str], int] = {}
        self.not_accepted: dict[str, set[tuple[str, int]]] = defaultdict(set)
        self.sends: dict[str, dict[str, tuple[int, list[int]]]] = defaultdict(dict)
        self.slowest = SlowestReceiver()  # across processes, until no report can change it
        self.last_receiver_done = Histogram()
        self.points: dict[int, dict[str, Any]] = {}
        self._open_secs: deque[int] = deque()  # seconds whose fan-out histogram is still kept
        self.storm_users: list[dict[str, Any]] = []
        self.history: dict[Node, dict[str, int]] = {}
        self.processes: dict[Node, dict[str, Any]] = {}
        self.final_pids: set[Node] = set()  # (host, pid) of the processes that sent their final partial
        self.clock_sync = "none"  # whether tags and receipts were on the server's clock
        self.live: dict[Node, dict[str, int]] = {}  # per process: integrity so far

    def add(self, partial: dict[str, Any]) -> None:
        pid = node_of(partial)
        if pid in self.final_pids:
            return  # a late regular report after the final one
        for name, encoded in partial["hists"].items():
            self.hists[name].merge(Histogram.decode(encoded))
        self.counters[pid] = partial["counters"]
        for reason, n in partial["errors"].items():
            self.errors[reason] += n
        self.peaks[pid] = max(self.peaks.get(pid, 0), partial["peak_connections"])
        self.windows.extend(partial["windows"])
        for channel, encoded in partial["acked"].items():
            self.acked[channel].extend(decode_ids(encoded))
        for channel, n in partial["sent"].items():
            self.sent[(pid, channel)] = n
        for channel, keys in partial.get("not_accepted", {}).items():
            self.not_accepted[channel].update((publisher, seq) for publisher, seq in keys)
        for channel, streams in partial.get("sends", {}).items():
            for publisher, (first, encoded) in streams.items():
                self._add_sends(channel, publisher, first, decode_ids(encoded))
        for tag, (intended_us, latency) in partial["last_receiver"].items():
            self.slowest.note(tag, intended_us, latency)
        for point in partial["points"]:
            self._add_point(point)
        self.storm_users.extend(partial["storm_users"])
        self.history[pid] = partial["history"]
        if partial.get("live"):
            self.live[pid] = partial["live"]
        cpu = partial["cpu"]
        self.processes[pid] = {
            "pid": pid[1],
            "host": pid[0],
            "role": partial["role"],
            "cpu_percent_max": round(max(cpu), 1) if cpu else 0.0,
            "cpu_percent_mean": round(sum(cpu) / len(cpu), 1) if cpu else 0.0,
            "clock": partial["clock"],
        }
        if partial["final"]:
            self.final_pids.add(pid)
        self._settle(time.time())

    def _add_sends(self, channel: str, publisher: str, first: int, times: list[int]) -> None:
        """A stream's send times from one partial, after those of the earlier ones (a hole: never sent)."""
        known = self.sends[channel].get(publisher)
        if known is None:
            self.sends[channel][publisher] = (first, times)
            return
        start, kept = known
        kept.extend([0] * max(0, first - start - len(kept)))
        kept.extend(times)

    def _send_arrays(self) -> Sends:
        """Each stream's send times; a publish the server did not accept counts as never sent."""
        arrays: Sends = {}
        for channel, streams in self.sends.items():
            arrays[channel] = {p: (first, np.asarray(times, dtype=np.int64)) for p, (first, times) in streams.items()}
            for publisher, seq in self.not_accepted.get(channel, ()):
                first, times = arrays[channel].get(publisher, (0, np.zeros(0, dtype=np.int64)))
                if 0 <= seq - first < len(times):
                    times[seq - first] = 0
        return arrays

    def _settle(self, now: float) -> None:
        """Fold what no worker can still change into compact form: slowest receivers into their
        histogram, old seconds' fan-out histograms into two percentiles (a histogram per second
        would cost 190 kB each)."""
        for _, _, latency in self.slowest.settle((now - LAST_RECEIVER_MERGE_S) * 1e6):
            self.last_receiver_done.record(latency)
        while self._open_secs and self._open_secs[0] < now - SETTLED_AFTER_S:
            self._settle_point(self.points[self._open_secs.popleft()])

    @staticmethod
    def _settle_point(point: dict[str, Any]) -> None:
        fanout: Histogram | None = point.pop("fanout", None)
        if fanout is not None or "p50" not in point:
            p50, p99 = fanout.percentiles([50, 99]) if fanout is not None else (0.0, 0.0)
            point["p50"], point["p99"] = p50 / 1000, p99 / 1000

    def _add_point(self, point: dict[str, Any]) -> None:
        sec = point["sec"]
        merged = self.points.get(sec)
        fanout = Histogram.decode(point["fanout"]) if point["fanout"] else None
        core_set, cores = point.get("core_set") or ("", 1)
        if merged is None:
            self.points[sec] = {**point, "fanout": fanout, "core_sets": {core_set: [point["cpu_percent"], 1, cores]}}
            if not self._open_secs or sec > self._open_secs[-1]:
                self._open_secs.append(sec)
            else:
                self._open_secs = deque(sorted((*self._open_secs, sec)))
            return
        if "p50" in merged:  # settled already: counts still add up, percentiles stay
            fanout = None
            merged["fanout"] = None
        for key in ("users", *POINT_COUNTERS, "connections"):
            merged[key] = merged.get(key, 0) + point.get(key, 0)
        merged["cpu_percent"] = max(merged["cpu_percent"], point["cpu_percent"])
        shared = merged["core_sets"].setdefault(core_set, [0.0, 0, cores])
        shared[0] += point["cpu_percent"]
        shared[1] += 1
        if fanout is not None:
            merged["fanout"] = fanout if merged.get("fanout") is None else merged["fanout"].merge(fanout)
        if "p50" in merged:
            merged.pop("fanout", None)

    # -- the result ------------------------------------------------------------------------

    def live_integrity(self) -> dict[str, Any]:
        """What the live view shows: integrity so far (gaps are messages missing now: lost, or late)."""
        totals = dict.fromkeys(LIVE_INTEGRITY, 0)
        for per in self.live.values():
            for key in LIVE_INTEGRITY:
                totals[key] += per.get(key, 0)
        return {
            "protocol": self.params.get("protocol"),
            "published": self._total("published"),
            "delivered": self._total("delivered"),
            "lost": totals["gaps"],
            "duplicated": totals["duplicated"],
            "reordered": totals["reordered"],
        }

    def _total(self, name: str) -> int:
        return sum(per.get(name, 0) for per in self.counters.values())

    def timeseries(self, after_epoch: int = 0, *, settle: bool = True) -> list[dict[str, Any]]:
        """Per-second points (those after ``after_epoch``); ``settle`` makes them final."""
        if not self.points:
            return []
        first = min(self.points)
        series = []
        for sec in sorted(self.points):
            if sec <= after_epoch:
                continue
            point = self.points[sec]
            if settle:
                self._settle_point(point)
            if "p50" in point:
                p50, p99 = point["p50"] * 1000, point["p99"] * 1000
            else:
                fanout: Histogram | None = point.get("fanout")
                p50, p99 = fanout.percentiles([50, 99]) if fanout is not None else (0.0, 0.0)
            series.append(
                {
                    "t": sec - first,
                    "epoch_s": sec,
                    "users": point["users"],
                    "connections": point["connections"],
                    "published_per_s": point["published"],
                    "delivered_per_s": point["delivered"],
                    "errors": point["errors"],
                    "fanout_p50_ms": p50 / 1000,
                    "fanout_p99_ms": p99 / 1000,
                    "cpu_percent": point["cpu_percent"],
                    **_shared_cores(point["core_sets"]),
                    "connect_attempts_per_s": point["connect_attempts"],
                    "pages_per_s": point["pages"],
                }
            )
        return series

    def result(self, *, saturated_at: float = SATURATION_PERCENT) -> dict[str, Any]:
        hists = dict(self.hists)
        self._settle(float("inf"))
        if self.last_receiver_done.count:
            hists["fanout_last_receiver"] = self.last_receiver_done
        hists = {name: hists[name] for name in LATENCY_NAMES if name in hists and hists[name].count}
        series = self.timeseries()
        duration = max(1.0, len(series)) if series else max(1e-3, time.time() - self.started)
        published = self._total("published")
        totals = expected_for_windows(
            self.windows, {ch: sorted(set(ids)) for ch, ids in self.acked.items()}, self._unacked(), self._send_arrays()
        )
        processes = sorted(self.processes.values(), key=lambda p: (p["host"], p["pid"]))
        cpu_max = max((p["cpu_percent_max"] for p in processes), default=0.0)
        peak_from_series = max((p["connections"] for p in series), default=0)
        return {
            "scenario": self.scenario,
            "protocol": self.params.get("protocol"),
            "params": self.params,
            "latency_ms": {name: hist.summary_ms() for name, hist in hists.items()},
            "histograms": {name: hist.encode() for name, hist in hists.items()},
            "throughput": {
                "published": published,
                "delivered": totals.delivered,
                "expected_deliveries": totals.expected,
                "lost": totals.lost,
                "duplicated": totals.duplicated,
                "reordered": totals.reordered,
                "recovered": totals.recovered,
                "gaps": totals.gaps,
                "unacked": totals.unacked,
                "not_accepted": sum(len(keys) for keys in self.not_accepted.values()),
                "uncertain": totals.uncertain,
                "history_resets": self._total("history_resets"),
                "lossy_windows": totals.lossy,
                "published_per_s": round(published / duration, 3),
                "delivered_per_s": round(totals.delivered / duration, 3),
                "duration_s": duration,
            },
            "integrity": integrity_summary(totals.method, totals.methods, totals.uncertain),
            "connections": {
                "peak": max(peak_from_series, max(self.peaks.values(), default=0)),
                "opened": self._total("opened"),
                "failed": self._total("connect_failed"),
                "closed": self._total("closed"),
                "attempts": self._total("connect_attempts"),
                "subscribed": self._total("subscribed"),
            },
            "errors": dict(sorted(self.errors.items())),
            "received": self._received(),
            "storm": storm_summary(
                self.storm_users,
                {sec: p["connect_attempts"] for sec, p in self.points.items()},
                missed_recovered=totals.recovered,
            ),
            "history": self._history(duration),
            "loadgen": {
                "processes": [
                    {k: p[k] for k in ("pid", "host", "role", "cpu_percent_max", "cpu_percent_mean")} for p in processes
                ],
                "cpu_percent_max": cpu_max,
                "saturated": cpu_max > saturated_at,
            },
            "timeseries": series,
            "clock": {
                "reference": "server timestamp",
                "sync": self.clock_sync,  # as applied
                "processes": [
                    {"pid": p["pid"], "host": p["host"], **(p["clock"] or {})} for p in processes if p["clock"]
                ],
            },
        }

    def _received(self) -> dict[str, int]:
        """Counts of non-chat server messages (READ_RECEIPT, USER_STATUS, NOTIFICATION, ...)."""
        out: dict[str, int] = defaultdict(int)
        for per in self.counters.values():
            for name, n in per.items():
                if name.startswith("received_"):
                    out[name.removeprefix("received_")] += n
        return dict(sorted(out.items()))

    def _unacked(self) -> dict[str, int]:
        sent: dict[str, int] = defaultdict(int)
        for (_, channel), n in self.sent.items():
            sent[channel] += n
        return {
            ch: max(0, n - len(self.acked.get(ch, [])) - len(self.not_accepted.get(ch, ()))) for ch, n in sent.items()
        }

    def _history(self, duration: float) -> dict[str, Any] | None:
        totals: dict[str, int] = defaultdict(int)
        for per in self.history.values():
            for key, n in per.items():
                totals[key] += n
        if not totals.get("pages"):
            return None
        return {
            "pages": totals["pages"],
            "pages_per_s": round(totals["pages"] / duration, 3),
            "messages": totals.get("messages", 0),
            "contiguous": totals.get("gaps", 0) == 0 and totals.get("duplicates", 0) == 0,
            "duplicates": totals.get("duplicates", 0),
            "gaps": totals.get("gaps", 0),
        }

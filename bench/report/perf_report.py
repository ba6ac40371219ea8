"""The ratios of ``bench perf`` against its targets, as console tables and a self-contained perf.html."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from rich.table import Table

from bench.report.htmlkit import badge, fmt, h, kv_table, page, table, text


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    part: str
    ours: str
    theirs: str
    at_least: float


TARGETS: Final = (
    Target("capacity at the SLO: default / naive", "capacity", "default", "naive", 10.0),
    Target("capacity at the SLO: default / node-ws", "capacity", "default", "peer:node-ws", 3.0),
    Target("capacity at the SLO: default / picows", "capacity", "default", "peer:picows", 1.0),
    Target("client msgs per CPU-second: ours / websocket-client", "loadgen", "ours", "websocket-client", 3.0),
    Target("capacity at p99<10ms: default / node-ws", "capacity_tight", "default", "peer:node-ws", 3.0),
    Target("capacity at p99<10ms: default / picows", "capacity_tight", "default", "peer:picows", 3.0),
)
LATENCY_SLACK: Final = (1.2, 1.0)  # default's p99 at a fixed load <= 1.2 x the best peer's + 1 ms
LOOP_LAG_TRUST_MS: Final = 5.0  # a load generator later than this (p99) to send measured itself


def _searches(report: dict[str, Any], part: str) -> list[dict[str, Any]]:
    rows = report.get("capacity") if part == "capacity" else (report.get("latency") or {}).get("capacity")
    return rows or []


def _figures(report: dict[str, Any], part: str) -> dict[str, float | None]:
    """The figure each target compares, by name: delivered/s at capacity, or messages per CPU-second."""
    if part in ("capacity", "capacity_tight"):
        return {row["config"]: row.get("delivered_per_s") for row in _searches(report, part)}
    clients = (report.get("loadgen") or {}).get("clients", {})
    return {name: data.get("msgs_per_cpu_s") for name, data in clients.items()}


def _bounded(report: dict[str, Any], part: str) -> set[str]:
    """Configs whose capacity search the load generator stopped (it saturated at the first broken step):
    their figure is a lower bound of the server's."""
    if part not in ("capacity", "capacity_tight"):
        return set()
    return {row["config"] for row in _searches(report, part) if row.get("loadgen_bound")}


def ratios(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target whose part ran: both figures, the ratio and whether it met the target
    (``met`` is None when a figure is missing, e.g. a config that never held a step)."""
    rows = _latency_targets(report)
    for target in TARGETS:
        if (target.part if target.part != "capacity_tight" else "latency") not in report:
            continue
        figures = _figures(report, target.part)
        if target.ours not in figures or target.theirs not in figures:
            continue
        ours, theirs = figures[target.ours], figures[target.theirs]
        ratio = ours / theirs if ours and theirs else None
        met = None if ratio is None else ratio >= target.at_least
        bounded = _bounded(report, target.part)
        # ours a lower bound: only "met" is certain; theirs a lower bound: only "missed" is
        if (target.ours in bounded and met is False) or (target.theirs in bounded and met is True):
            met = None
        rows.append(
            {
                "target": target.name,
                "ours": ours,
                "theirs": theirs,
                "ratio": ratio,
                "at_least": target.at_least,
                "met": met,
                "loadgen_bound": sorted(bounded & {target.ours, target.theirs}),
            }
        )
    return rows


def _latency_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """At each fixed load: default's p99 against the best peer's, ``LATENCY_SLACK`` allowed; a load where
    the load generator saturated, or was late by more than ``LOOP_LAG_TRUST_MS`` (p99) to send, proves
    nothing about the servers and has no verdict (``met`` None). Receipt is the kernel's receive time, so
    the reader's own lag is not in the figure; how late publishers sent is (``send_lag``; rows from before
    it was recorded fall back on the loop lag)."""
    rows = []
    latency = (report.get("latency") or {}).get("rows") or []
    factor, plus_ms = LATENCY_SLACK
    for load in sorted({row["offered_deliveries_per_s"] for row in latency}):
        at = {row["config"]: row for row in latency if row["offered_deliveries_per_s"] == load}
        peers = [row for name, row in at.items() if name.startswith("peer:") and row.get("fanout_p99_ms")]
        ours = at.get("default")
        if ours is None or not peers:
            continue
        best = min(peers, key=lambda row: row["fanout_p99_ms"])
        trusted = not any(row.get("loadgen_saturated") or _late_ms(row) > LOOP_LAG_TRUST_MS for row in (ours, best))
        wanted = factor * best["fanout_p99_ms"] + plus_ms
        p99 = ours.get("fanout_p99_ms")
        rows.append({
            "target": f"p99 at {load:,}/s: default <= {factor:g} x {best['config']} + {plus_ms:g} ms",
            "ours": p99, "theirs": best["fanout_p99_ms"], "ratio": p99 / best["fanout_p99_ms"] if p99 else None,
            "at_least": None, "wanted": f"<= {wanted:.3g} ms",
            "met": (p99 is not None and p99 <= wanted) if trusted else None,
        })  # fmt: skip
    return rows


def _late_ms(row: dict[str, Any]) -> float:
    """How late the load generator was, p99: to send (``send_lag``), or its loop lag in older reports."""
    late = row.get("loadgen_send_lag_p99_ms")
    return float(late if late is not None else row.get("loadgen_loop_lag_p99_ms") or 0)


def _met_text(row: dict[str, Any]) -> str:
    if row["met"] is None and row.get("loadgen_bound") and row["ratio"]:
        return "no verdict: load generator bound"
    return {True: "met", False: "MISSED", None: "no figure"}[row["met"]]


def _ratio_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (r["target"], fmt(r["ours"]), fmt(r["theirs"]), f"{fmt(r['ratio'])}x" if r["ratio"] else "-",
         r.get("wanted") or f">= {r['at_least']:g}x", _met_text(r))
        for r in report.get("ratios", [])
    ]  # fmt: skip


def _capacity_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (r["config"], fmt(r["highest_held"]), fmt(r.get("published_per_s")), fmt(r["delivered_per_s"]),
         fmt(r["fanout_p99_ms"]), fmt(r.get("loadgen_cpu_percent_max")), r["broke_on"])
        for r in report.get("capacity") or []
    ]  # fmt: skip


def _tight_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    return _capacity_rows({"capacity": (report.get("latency") or {}).get("capacity")})


def _latency_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (r["config"], fmt(r["offered_deliveries_per_s"]), fmt(r.get("delivered_per_s")), fmt(r["fanout_p50_ms"]),
         fmt(r["fanout_p99_ms"]), fmt(r["lost"]), "yes" if r.get("loadgen_saturated") else "no",
         fmt(r.get("loadgen_loop_lag_p99_ms")), fmt(r.get("loadgen_send_lag_p99_ms")))
        for r in (report.get("latency") or {}).get("rows") or []
    ]  # fmt: skip


def _cost_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (c["config"], fmt(c["offered_deliveries_per_s"]), fmt(c["server_cpu_percent"]),
         fmt(c["server_us_per_delivery"]), fmt(c["loadgen_cpu_percent"]), fmt(c["loadgen_us_per_delivery"]),
         fmt(c["lost"]), fmt(c["fanout_p99_ms"]))
        for c in report.get("cost") or []
    ]  # fmt: skip


def _loadgen_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    clients = (report.get("loadgen") or {}).get("clients", {})
    return [(name, fmt(c["msgs_per_cpu_s"]), fmt(c["highest_rate_below_90pct"])) for name, c in clients.items()]


def _memory_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    memory = report.get("memory")
    if not memory:
        return []
    rows: list[tuple[str, ...]] = [
        (f"server {m['server']}", fmt(m["connections"]), fmt(m["server_bytes_per_conn"] / 1024))
        for m in memory["servers"]
    ]
    loadgen = memory["loadgen"]
    rows.append(("load generator (ours, one Locust process)", fmt(loadgen["connections"]),
                 fmt(loadgen["bytes_per_conn"] / 1024)))  # fmt: skip
    return rows


RATIO_HEAD: Final = ("target", "ours", "theirs", "ratio", "wanted", "verdict")
CAPACITY_HEAD: Final = (
    "config", "rate/publisher held", "published/s", "delivered/s", "fan-out p99 ms", "loadgen CPU % max", "broke on"
)  # fmt: skip
COST_HEAD: Final = (
    "config", "offered deliveries/s", "server CPU %", "server µs/delivery", "loadgen CPU %", "loadgen µs/delivery",
    "lost", "fan-out p99 ms",
)  # fmt: skip
LATENCY_HEAD: Final = (
    "config", "offered deliveries/s", "delivered/s", "fan-out p50 ms", "fan-out p99 ms", "lost",
    "loadgen saturated", "loadgen loop lag p99 ms", "loadgen send lag p99 ms",
)  # fmt: skip
LOADGEN_HEAD: Final = ("client", "msgs per CPU-second", "highest msgs/s below 90% CPU")
MACHINE_KEYS: Final = (
    "cpu_model", "cpu_count_logical", "cpu_count_physical", "cpu_freq_mhz", "memory_total_mb", "load_average", "os"
)  # fmt: skip
MEMORY_HEAD: Final = ("process", "idle subscribed connections", "KiB per connection")


def _console_table(title: str, head: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    out = Table(title=title, title_justify="left")
    for i, col in enumerate(head):
        out.add_column(col, justify="left" if i == 0 or col in ("broke on", "verdict") else "right")
    for row in rows:
        out.add_row(*row)
    return out


def console_tables(report: dict[str, Any]) -> list[Table]:
    tables = []
    for title, head, rows in (
        ("capacity at fanout.p99<50ms, zero loss", CAPACITY_HEAD, _capacity_rows(report)),
        ("latency at fixed offered loads", LATENCY_HEAD, _latency_rows(report)),
        ("capacity at fanout.p99<10ms, zero loss", CAPACITY_HEAD, _tight_rows(report)),
        ("CPU per delivered message at one offered load", COST_HEAD, _cost_rows(report)),
        ("load generator efficiency (one process)", LOADGEN_HEAD, _loadgen_rows(report)),
        ("memory per idle subscribed connection", MEMORY_HEAD, _memory_rows(report)),
        ("targets (ratios from this run)", RATIO_HEAD, _ratio_rows(report)),
    ):
        if rows:
            tables.append(_console_table(title, head, rows))
    return tables


def _pinning_text(pinning: dict[str, Any]) -> str:
    if not pinning.get("pinned"):
        return "not pinned: servers and the load generator shared every core"
    return (f"pinned (sched_setaffinity): servers on cores {pinning.get('server_cpus') or 'any'}, "
            f"the load generator on {pinning.get('loadgen_cpus') or 'any'}")  # fmt: skip


def render_html(report: dict[str, Any]) -> str:
    env = report.get("environment") or {}
    parts = [
        text("h1", "bench perf" + (" (quick)" if report.get("quick") else "")),
        text("p", f"{report['command']} · {env.get('cpu_model')} · {env.get('cpu_count_logical')} logical CPUs", "sub"),
        text("p", _pinning_text(report.get("pinning") or {}), "sub"),
    ]
    ratio_rows = [(*row[:5], badge(row[5], {"met": "ok", "MISSED": "bad"}.get(row[5], "warn"))) for row in
                  _ratio_rows(report)]  # fmt: skip
    if ratio_rows:
        parts += [text("h2", "Targets"), table(RATIO_HEAD, ratio_rows, raw_columns=(5,), left_columns=(0,))]
    if report.get("capacity"):
        parts += [
            text("h2", "Capacity at fanout.p99<50ms with zero loss"),
            h("p", '<a href="capacity/capacity.html">every step, with its run report</a>'),
            table(CAPACITY_HEAD, _capacity_rows(report), left_columns=(6,)),
        ]
    if report.get("latency"):
        parts += [
            text("h2", "Latency at fixed offered loads"),
            text(
                "p",
                "Each config at the same offered loads, interleaved; receipt is the kernel's receive time. "
                "A row where the load generator saturated or sent late (send lag p99 over 5 ms) measures "
                "the load generator, not the server, and gets no verdict.",
                "sub",
            ),
            table(LATENCY_HEAD, _latency_rows(report)),
            text("h2", "Capacity at fanout.p99<10ms with zero loss"),
            table(CAPACITY_HEAD, _tight_rows(report), left_columns=(6,)),
        ]
    if report.get("cost"):
        parts += [
            text("h2", "CPU per delivered message at one offered load"),
            text(
                "p",
                "Server and load generator share the machine; their CPU per delivery is what a capacity "
                "on a dedicated machine is made of, and it does not move with other processes' bursts.",
                "sub",
            ),
            table(COST_HEAD, _cost_rows(report)),
        ]
    if report.get("loadgen"):
        parts += [text("h2", "Load-generator efficiency"), table(LOADGEN_HEAD, _loadgen_rows(report))]
    if report.get("memory"):
        parts += [text("h2", "Memory per idle subscribed connection"), table(MEMORY_HEAD, _memory_rows(report))]
    plan = report.get("plan") or {}
    parts += [
        text("h2", "Method"),
        kv_table([*plan.items(), ("started_at", report.get("started_at")), ("finished_at", report.get("finished_at"))]),
        text("h2", "Machine"),
        kv_table([(key, env.get(key)) for key in MACHINE_KEYS]),
    ]
    return page("bench perf", parts)

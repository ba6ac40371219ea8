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
)


def _figures(report: dict[str, Any], part: str) -> dict[str, float | None]:
    """The figure each target compares, by name: delivered/s at capacity, or messages per CPU-second."""
    if part == "capacity":
        return {row["config"]: row.get("delivered_per_s") for row in report.get("capacity") or []}
    clients = (report.get("loadgen") or {}).get("clients", {})
    return {name: data.get("msgs_per_cpu_s") for name, data in clients.items()}


def ratios(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target whose part ran: both figures, the ratio and whether it met the target
    (``met`` is None when a figure is missing, e.g. a config that never held a step)."""
    rows = []
    for target in TARGETS:
        if target.part not in report:
            continue
        figures = _figures(report, target.part)
        if target.ours not in figures or target.theirs not in figures:
            continue
        ours, theirs = figures[target.ours], figures[target.theirs]
        ratio = ours / theirs if ours and theirs else None
        rows.append(
            {
                "target": target.name,
                "ours": ours,
                "theirs": theirs,
                "ratio": ratio,
                "at_least": target.at_least,
                "met": None if ratio is None else ratio >= target.at_least,
            }
        )
    return rows


def _met_text(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "no figure"}[met]


def _ratio_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (r["target"], fmt(r["ours"]), fmt(r["theirs"]), f"{fmt(r['ratio'])}x" if r["ratio"] else "-",
         f">= {r['at_least']:g}x", _met_text(r["met"]))
        for r in report.get("ratios", [])
    ]  # fmt: skip


def _capacity_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (r["config"], fmt(r["highest_held"]), fmt(r.get("published_per_s")), fmt(r["delivered_per_s"]),
         fmt(r["fanout_p99_ms"]), fmt(r.get("loadgen_cpu_percent_max")), r["broke_on"])
        for r in report.get("capacity") or []
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
        ("CPU per delivered message at one offered load", COST_HEAD, _cost_rows(report)),
        ("load generator efficiency (one process)", LOADGEN_HEAD, _loadgen_rows(report)),
        ("memory per idle subscribed connection", MEMORY_HEAD, _memory_rows(report)),
        ("targets (ratios from this run)", RATIO_HEAD, _ratio_rows(report)),
    ):
        if rows:
            tables.append(_console_table(title, head, rows))
    return tables


def render_html(report: dict[str, Any]) -> str:
    env = report.get("environment") or {}
    parts = [
        text("h1", "bench perf" + (" (quick)" if report.get("quick") else "")),
        text("p", f"{report['command']} · {env.get('cpu_model')} · {env.get('cpu_count_logical')} logical CPUs", "sub"),
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

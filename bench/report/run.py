"""report.html for one run, rendered from result.json alone (``bench report result.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from bench.core.schema import LATENCY_NAMES, SATURATION_PERCENT
from bench.report import figures
from bench.report.htmlkit import badge, figure, flatten, fmt, fmt_field, h, kv_table, page, table, text, tile, tiles
from bench.results import run as results

PERCENTILE_COLUMNS: Final = (
    ("count", "count"),
    ("min", "min"),
    ("mean", "mean"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p99_9", "p99.9"),
    ("max", "max"),
)
THROUGHPUT_ROWS: Final = (
    ("published", "messages published"),
    ("expected_deliveries", "deliveries expected"),
    ("delivered", "deliveries received"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("reordered", "reordered"),
    ("not_accepted", "publishes not accepted (connection broke first)"),
    ("published_per_s", "published / s"),
    ("delivered_per_s", "delivered / s"),
)


MARKED_EVENTS: Final = ("server restart", "server died")


def event_markers(result: dict[str, Any]) -> list[tuple[float, str]]:
    """Orchestrator events placed on the time series' clock (its points carry ``epoch_s`` and ``t``)."""
    anchor = next((p for p in result.get("timeseries") or [] if "epoch_s" in p and "t" in p), None)
    if anchor is None:
        return []
    zero = float(anchor["epoch_s"]) - float(anchor["t"])
    return [
        (float(e["epoch"]) - zero, str(e["kind"]))
        for e in result.get("events") or []
        if e.get("kind") in MARKED_EVENTS and isinstance(e.get("epoch"), int | float)
    ]


def title_of(result: dict[str, Any]) -> str:
    return f"{result.get('scenario', '?')} · {results.target_label(result)}"


def slo_badge(slo: dict[str, Any]) -> str:
    passed = slo.get("passed")
    if passed is None:
        return badge("no SLO", "warn")
    return badge("SLO met", "ok") if passed else badge("SLO failed", "bad")


def _status_banner(result: dict[str, Any]) -> str:
    if result.get("status") == "ok":
        return ""
    return text("div", f"Run failed: {result.get('failure') or 'unknown reason'}", "banner bad")


def carries_messages(result: dict[str, Any]) -> bool:
    """Whether the scenario published or delivered chat messages (infinite_scroll, for one, does not)."""
    thr = result.get("throughput") or {}
    return bool(thr.get("published") or thr.get("delivered") or thr.get("expected_deliveries"))


def _message_tiles(result: dict[str, Any]) -> list[str]:
    thr = result.get("throughput") or {}
    fanout = (result.get("latency_ms") or {}).get("fanout") or {}
    items = [
        tile("delivered / s", fmt(thr.get("delivered_per_s")), f"{fmt(thr.get('delivered'))} in total"),
        tile("published / s", fmt(thr.get("published_per_s")), f"{fmt(thr.get('published'))} in total"),
    ]
    if fanout.get("count"):
        items.append(tile("fan-out p99", f"{fmt(fanout.get('p99'))} ms", f"p50 {fmt(fanout.get('p50'))} ms"))
    lost = thr.get("lost") or 0
    integrity = f"dup {fmt(thr.get('duplicated'))} · reord {fmt(thr.get('reordered'))}"
    method = (result.get("integrity") or {}).get("method")
    if method:
        integrity += f" · by {method}, uncertain {fmt(thr.get('uncertain'))}"
    items.append(tile("lost", fmt(lost), integrity, "bad" if lost else ""))
    return items


def _summary_tiles(result: dict[str, Any]) -> str:
    loadgen = result.get("loadgen") or {}
    status_ok = result.get("status") == "ok"
    items = [
        tile("status", badge("ok" if status_ok else "failed", "ok" if status_ok else "bad")),
        tile("SLO", slo_badge(result.get("slo") or {})),
    ]
    if carries_messages(result):
        items += _message_tiles(result)
    else:
        for name in ("connect", "subscribe"):
            stats = (result.get("latency_ms") or {}).get(name) or {}
            if stats.get("count"):
                items.append(tile(f"{name} p99", f"{fmt(stats.get('p99'))} ms", f"p50 {fmt(stats.get('p50'))} ms"))
    history = result.get("history") or {}
    if history:
        exact = history.get("contiguous") and not history.get("duplicates") and not history.get("gaps")
        items.append(tile("history pages / s", fmt(history.get("pages_per_s")), "exact" if exact else "NOT exact"))
    storm = result.get("storm") or {}
    if storm:
        items.append(
            tile("95% back after", f"{fmt(storm.get('back_95_s'))} s", f"all: {fmt(storm.get('back_100_s'))} s")
        )
    peak = (result.get("connections") or {}).get("peak")
    if peak:
        items.append(tile("peak connections", fmt(peak)))
    cpu = loadgen.get("cpu_percent_max_under_load", loadgen.get("cpu_percent_max"))
    note = "under load, saturated!" if loadgen.get("saturated") else "under load"
    items.append(tile("load-gen CPU max", f"{fmt(cpu)} %", note))
    return tiles(items)


def slo_section(slo: dict[str, Any]) -> str:
    verdicts = slo.get("verdicts") or []
    if not verdicts:
        return h("h2", "SLO verdicts") + text("p", "No --slo given for this run.", "muted")
    rows = [
        (
            badge("pass", "ok") if v["passed"] else badge("FAIL", "bad"),
            v["expr"],
            f"{fmt(v['actual'])} {v['unit']}".strip() if v["actual"] is not None else v.get("note", "not measured"),
            f"{v['op']} {fmt(v['threshold'])} {v['unit']}".strip(),
        )
        for v in verdicts
    ]
    return h("h2", "SLO verdicts") + table(
        ("verdict", "objective", "measured", "required"), rows, raw_columns=(0,), left_columns=(1,)
    )


def percentile_table(latency: dict[str, dict[str, Any]]) -> str:
    names = [name for name in (*LATENCY_NAMES, *sorted(latency)) if name in latency]
    rows = []
    for name in dict.fromkeys(names):
        stats = latency[name]
        rows.append((name, *(fmt(stats.get(key)) for key, _ in PERCENTILE_COLUMNS)))
    if not rows:
        return text("p", "No latency was measured.", "muted")
    headers = ("latency (ms)", *(label for _, label in PERCENTILE_COLUMNS))
    return table(headers, rows)


def _latency_section(result: dict[str, Any]) -> str:
    ts = result.get("timeseries") or []
    return (
        h("h2", "Latency")
        + percentile_table(result.get("latency_ms") or {})
        + figure(
            figures.percentile_distribution(result.get("histograms") or {}),
            "Percentile distribution (HdrHistogram style: the tail stretched on a log 1/(1-p) axis)",
        )
        + figure(figures.latency_over_time(ts, event_markers(result)), "Latency percentiles per second")
    )


def _throughput_section(result: dict[str, Any]) -> str:
    if not carries_messages(result):
        return ""
    thr = result.get("throughput") or {}
    ts = result.get("timeseries") or []
    rows = [(label, fmt(thr.get(key))) for key, label in THROUGHPUT_ROWS]
    extra = [(key, fmt(value)) for key, value in thr.items()
             if key not in dict(THROUGHPUT_ROWS) and key != "duration_s" and value != []]  # fmt: skip
    return (
        h("h2", "Throughput and delivery integrity")
        + h("div", table(("", "value"), rows + extra), "card")
        + figure(
            figures.lines_over_time(
                ts,
                (("delivered_per_s", "delivered/s"),),
                "delivered / s",
                markers=event_markers(result),
                right=("published_per_s", "published/s (right axis)", "published / s"),
            ),
            "Message rates",
        )
    )


def _connections_section(result: dict[str, Any]) -> str:
    ts = result.get("timeseries") or []
    conns = result.get("connections") or {}
    errors = result.get("errors") or {}
    error_rows = sorted(errors.items(), key=lambda kv: -kv[1])
    parts = [h("h2", "Connections and errors")]
    if conns.get("attempts"):  # infinite_scroll pages over HTTP only: no WebSocket figures to show
        parts.append(h("div", kv_table(sorted(conns.items())), "card"))
    parts.append(
        figure(
            figures.lines_over_time(
                ts, (("users", "users"), ("connections", "connections")), "count", markers=event_markers(result)
            ),
            "Users and open connections",
        )
    )
    parts.append(
        figure(
            figures.lines_over_time(ts, (("errors", "errors/s"),), "errors", bars=True, markers=event_markers(result)),
            "Errors per second",
        )
    )
    parts.append(
        table(("error reason", "count"), [(k, fmt(v)) for k, v in error_rows])
        if error_rows
        else text("p", "No errors.", "muted")
    )
    return "".join(parts)


def _storm_section(result: dict[str, Any]) -> str:
    storm = result.get("storm")
    if not storm:
        return ""
    pairs = sorted(flatten({k: v for k, v in storm.items() if k != "recovery_curve"}).items())
    return (
        h("h2", "Reconnect storm")
        + h("div", kv_table(pairs), "card")
        + figure(figures.recovery_curve(storm), "Recovery: users back and resubscribed")
        + figure(
            figures.lines_over_time(
                result.get("timeseries") or [],
                (("connect_attempts_per_s", "attempts/s"),),
                "attempts / s",
                bars=True,
                markers=event_markers(result),
            ),
            "Connection attempts per second (the thundering herd)",
        )
    )


def _history_section(result: dict[str, Any]) -> str:
    history = result.get("history")
    if not history:
        return ""
    pages = figures.lines_over_time(result.get("timeseries") or [], (("pages_per_s", "pages/s"),), "pages / s")
    return (
        h("h2", "History paging")
        + h("div", kv_table(sorted(flatten(history).items())), "card")
        + figure(pages, "History pages per second")
    )


KNOWN_FIELDS: Final = frozenset({
    "schema_version", "run_id", "scenario", "params", "target", "load", "started_at", "finished_at", "duration_s",
    "status", "failure", "failure_kind", "environment", "latency_ms", "throughput", "connections", "errors", "storm",
    "history", "loadgen", "timeseries", "clock", "histograms", "events", "slo", "command",
})  # fmt: skip


def _other_sections(result: dict[str, Any]) -> str:
    """Measurements this report has no dedicated section for (a scenario's own counters)."""
    parts = []
    for name, value in result.items():
        if name not in KNOWN_FIELDS and isinstance(value, dict) and value:
            parts.append(h("h2", text("span", name.replace("_", " ").capitalize())))
            parts.append(h("div", kv_table(sorted(flatten(value).items())), "card"))
    return "".join(parts)


def _loadgen_section(result: dict[str, Any]) -> str:
    loadgen = result.get("loadgen") or {}
    procs = loadgen.get("processes") or []
    verdict = (
        badge("saturated: the load generator, not the server, may be the limit", "bad")
        if loadgen.get("saturated")
        else badge("not saturated", "ok")
    )
    figures_line = (
        f"CPU max {fmt(loadgen.get('cpu_percent_max_under_load'))} % under load, "
        f"{fmt(loadgen.get('cpu_percent_max'))} % over the whole run (the stop second included); "
        f"saturated above {fmt(loadgen.get('saturation_percent'))} %. 100 % is one core."
    )
    parts = [h("h2", "Load generator"), h("p", verdict + " " + text("span", figures_line, "muted"))]
    if procs and all(isinstance(p, dict) for p in procs):
        keys = list(dict.fromkeys(k for p in procs for k in p))
        parts.append(table(keys, [[fmt_field(k, p.get(k)) for k in keys] for p in procs]))
    saturation = loadgen.get("saturation_percent") or SATURATION_PERCENT
    parts.append(figure(figures.loadgen_cpu(result.get("timeseries") or [], saturation), "Load generator CPU"))
    return "".join(parts)


def _setup_section(result: dict[str, Any]) -> str:
    target = dict(result.get("target") or {})
    config = target.pop("config", None)
    load = result.get("load") or {}
    parts = [
        h("h2", "Setup"),
        h(
            "div",
            h("div", text("h3", "Target") + kv_table(target.items()))
            + h("div", text("h3", "Load") + kv_table(load.items())),
            "grid2",
        ),
    ]
    if config:
        parts.append(text("h3", "Server configuration") + kv_table(sorted(flatten(config).items())))
    if result.get("command"):
        parts.append(text("h3", "Command") + text("pre", result["command"]))
    if result.get("params"):
        parts.append(text("h3", "Scenario parameters") + kv_table(sorted(result["params"].items())))
    if result.get("clock"):
        parts.append(text("h3", "Clock") + kv_table(sorted(flatten(result["clock"]).items())))
    if result.get("events"):
        parts.append(
            text("h3", "Events (t on bench's clock, from the load generator's start)")
            + table(
                ("t (s)", "event"), [(fmt(e.get("t")), e.get("event")) for e in result["events"]], left_columns=(1,)
            )
        )
    return "".join(parts)


def _environment_section(result: dict[str, Any]) -> str:
    env = result.get("environment") or {}
    return h("h2", "Environment") + kv_table(sorted(flatten(env).items()))


def render(result: dict[str, Any]) -> str:
    """The whole page for one result dict."""
    load = result.get("load") or {}
    subtitle = (
        f"run {result.get('run_id', '?')} · started {result.get('started_at', '?')} · "
        f"{fmt(result.get('duration_s'))} s · {fmt(load.get('users'))} users"
    )
    body = [
        text("h1", title_of(result)),
        text("p", subtitle, "sub"),
        _status_banner(result),
        _summary_tiles(result),
        slo_section(result.get("slo") or {}),
        _latency_section(result),
        _throughput_section(result),
        _connections_section(result),
        _storm_section(result),
        _history_section(result),
        _other_sections(result),
        _loadgen_section(result),
        _setup_section(result),
        _environment_section(result),
        text("footer", f"chatbench · result schema {result.get('schema_version')} · rendered from result.json"),
    ]
    return page(f"bench: {title_of(result)}", body)


def write(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result))
    return path

"""The summary tables printed on the terminal after a run (rich)."""

from __future__ import annotations

from typing import Any, Final

from rich.console import Console
from rich.table import Table

from bench.core.schema import LATENCY_NAMES
from bench.report.htmlkit import fmt
from bench.results import run as results

LATENCY_COLUMNS: Final = ("count", "p50", "p90", "p99", "p99_9", "max")


def latency_table(result: dict[str, Any]) -> Table:
    table = Table(title="latency (ms)", title_justify="left")
    table.add_column("metric")
    for col in LATENCY_COLUMNS:
        table.add_column(col.replace("_", "."), justify="right")
    latency = result.get("latency_ms") or {}
    for name in dict.fromkeys([n for n in LATENCY_NAMES if n in latency] + sorted(latency)):
        stats = latency[name]
        if stats.get("count"):
            table.add_row(name, *(fmt(stats.get(col)) for col in LATENCY_COLUMNS))
    return table


def throughput_table(result: dict[str, Any]) -> Table:
    thr = result.get("throughput") or {}
    table = Table(title="throughput and integrity", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for key in results.THROUGHPUT_DEFAULTS:
        style = "bold red" if key in ("lost", "duplicated") and thr.get(key) else ""
        table.add_row(key.replace("_", " "), fmt(thr.get(key)), style=style)
    errors = result.get("errors") or {}
    table.add_row("errors", fmt(sum(errors.values())) if errors else "0")
    return table


def slo_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for verdict in (result.get("slo") or {}).get("verdicts", []):
        mark = "[green]pass[/]" if verdict["passed"] else "[bold red]FAIL[/]"
        actual = verdict["actual"]
        measured = f"measured {fmt(actual)} {verdict['unit']}".strip() if actual is not None else "not measured"
        lines.append(f"SLO {mark}  {verdict['expr']}  ({measured})")
    return lines


def print_run(console: Console, result: dict[str, Any], report_path: str) -> None:
    status = "[green]ok[/]" if result.get("status") == "ok" else f"[bold red]FAILED[/]: {result.get('failure')}"
    console.print(
        f"[bold]{result.get('scenario')}[/] on [bold]{results.target_label(result)}[/] · "
        f"{fmt(result.get('duration_s'))} s · status {status}",
        highlight=False,
    )
    latency = latency_table(result)
    if latency.row_count:
        console.print(latency)
    thr = result.get("throughput") or {}
    if thr.get("published") or thr.get("expected_deliveries") or thr.get("delivered"):
        console.print(throughput_table(result))
    history = result.get("history")
    if history:
        console.print(
            f"history: {fmt(history.get('pages'))} pages ({fmt(history.get('pages_per_s'))}/s), "
            f"{fmt(history.get('messages'))} messages · "
            f"contiguous {fmt(history.get('contiguous'))} · duplicates {fmt(history.get('duplicates'))} · "
            f"gaps {fmt(history.get('gaps'))}",
            highlight=False,
        )
    conns = result.get("connections") or {}
    if conns.get("attempts"):
        console.print(
            f"connections: peak {fmt(conns.get('peak'))} · opened {fmt(conns.get('opened'))} · "
            f"failed {fmt(conns.get('failed'))} · errors {fmt(sum((result.get('errors') or {}).values()))}",
            highlight=False,
        )
    loadgen = result.get("loadgen") or {}
    saturated = " [bold red](saturated: the load generator may be the limit)[/]" if loadgen.get("saturated") else ""
    under_load = loadgen.get("cpu_percent_max_under_load", loadgen.get("cpu_percent_max"))
    console.print(f"load-gen CPU max {fmt(under_load)} % under load{saturated}", highlight=False)
    for line in slo_lines(result):
        console.print(line, highlight=False)
    storm = result.get("storm")
    if storm:
        console.print(
            f"storm: {fmt(storm.get('users'))} users cut · back 50% {fmt(storm.get('back_50_s'))} s · "
            f"95% {fmt(storm.get('back_95_s'))} s · 100% {fmt(storm.get('back_100_s'))} s · "
            f"gave up {fmt(storm.get('gave_up'))} · peak {fmt(storm.get('peak_attempts_per_s'))} attempts/s",
            highlight=False,
        )
    console.print(f"report: {report_path}", highlight=False, soft_wrap=True)

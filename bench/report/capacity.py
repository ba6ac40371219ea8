"""``bench capacity`` output: the console table and capacity.html, rendered from the capacity document."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.report import figures
from bench.report.htmlkit import badge, figure, fmt, h, kv_table, page, table, text
from bench.results import run as results


def console_table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="capacity: the highest load that held", title_justify="left")
    for col in (
        "config",
        f"highest {rows[0]['param'] if rows else ''}",
        "delivered/s there",
        "fan-out p99 (ms)",
        "first broken at",
        "broke on",
    ):
        out.add_column(col, justify="left" if col in ("config", "broke on") else "right")
    for row in rows:
        out.add_row(
            row["config"],
            fmt(row["highest_held"]),
            fmt(row["delivered_per_s"]),
            fmt(row["fanout_p99_ms"]),
            fmt(row["first_broken"]),
            row["broke_on"],
        )
    return out


def render_html(rows: list[dict[str, Any]], scenario: str, objectives: list[str], out_dir: Path) -> str:
    param = rows[0]["param"] if rows else "load"
    headline = table(
        ("config", f"highest {param} held", "delivered/s there", "fan-out p99 (ms)", "first broken at", "broke on"),
        [
            (
                r["config"],
                fmt(r["highest_held"]),
                fmt(r["delivered_per_s"]),
                fmt(r["fanout_p99_ms"]),
                fmt(r["first_broken"]),
                r["broke_on"],
            )
            for r in rows
        ],
        left_columns=(5,),
    )
    parts = [
        text("h1", f"Capacity: {scenario}"),
        text("p", "Objectives at every step: " + ", ".join(objectives), "sub"),
        headline,
    ]
    curves = {r["config"]: [(s["value"], s["delivered_per_s"] or 0.0, s["held"]) for s in r["steps"]] for r in rows}
    p99 = {r["config"]: [(s["value"], s["fanout_p99_ms"] or 0.0, s["held"]) for s in r["steps"]] for r in rows}
    parts.append(
        h(
            "div",
            figure(figures.step_curve("delivered / s", curves, param, "messages / s"), "Throughput per step")
            + figure(figures.step_curve("fan-out p99", p99, param, "ms"), "Fan-out p99 per step"),
            "grid2",
        )
    )
    for row in rows:
        step_rows = []
        for s in row["steps"]:
            link = os.path.relpath(Path(s["run"]).resolve() / results.REPORT_FILE, out_dir.resolve())
            step_rows.append(
                (
                    fmt(s["value"]),
                    badge("held", "ok") if s["held"] else badge("broke", "bad"),
                    fmt(s["delivered_per_s"]),
                    fmt(s["fanout_p99_ms"]),
                    fmt(s["lost"]),
                    f'<a href="{link}">report</a>',
                )
            )
        parts.append(text("h2", row["config"]))
        parts.append(
            table((param, "verdict", "delivered/s", "fan-out p99 (ms)", "lost", "run"), step_rows, raw_columns=(1, 5))
        )
    parts.append(h("h2", "Method") + kv_table([("step parameter", param), ("objectives", ", ".join(objectives))]))
    return page(f"bench capacity: {scenario}", parts)

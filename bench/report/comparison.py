"""``bench compare`` output: the console table and comparison.html, rendered from the comparison alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from rich.table import Table

from bench.core.histogram import Histogram
from bench.report import figures
from bench.report.htmlkit import badge, figure, flatten, fmt, h, kv_table, page, table, text
from bench.results import run as results
from bench.results.comparison import Group, load_differences

COMPARISON_FILE: Final = "comparison.html"


def mean_text(group: dict[str, Any]) -> str:
    """``mean ± stdev`` over the repeats, flagged when the spread is large (pyperf's "unstable")."""
    if group["n"] < 2:
        return fmt(group["mean"])
    return f"{fmt(group['mean'])} ± {fmt(group['stdev'], 2)}" + (" (noisy)" if group.get("noisy") else "")


def ratio_text(cell: dict[str, Any]) -> str:
    ratio = cell["ratio"]
    return "-" if ratio is None else f"{ratio:.2f}x"


def verdict_text(cell: dict[str, Any]) -> str:
    if cell["direction"] == "same":
        return "same"
    if cell["significant"] is None:
        return f"{cell['direction']}, {cell['verdict']}"
    if not cell["significant"]:
        return f"not significant (p={cell['p_value']:.2f})"
    return f"{cell['direction']}, significant (p={cell['p_value']:.3f})"


def console_table(groups: list[Group], rows: list[dict[str, Any]]) -> Table:
    table_ = Table(title=f"compared with {groups[0].label}", title_justify="left")
    table_.add_column("metric")
    for group in groups:
        table_.add_column(f"{group.label} (n={len(group.ok_results)})", justify="right")
    for group in groups[1:]:
        table_.add_column(f"{group.label} ratio", justify="right")
        table_.add_column("verdict")
    for row in rows:
        means = [mean_text(g) for g in row["groups"]]
        verdicts = []
        for cell in row["vs_base"]:
            style = {"better": "green", "worse": "red"}.get(cell["direction"], "") if cell["significant"] else "dim"
            verdicts += [ratio_text(cell), f"[{style}]{verdict_text(cell)}[/]" if style else verdict_text(cell)]
        table_.add_row(row["metric"], *means, *verdicts)
    return table_


def _merged_histograms(group: Group, name: str) -> dict[str, Any] | None:
    merged = Histogram()
    for result in group.ok_results:
        encoded = (result.get("histograms") or {}).get(name)
        if encoded:
            merged.merge(Histogram.decode(encoded))
    return merged.encode() if merged.count else None


def _verdict_badge(cell: dict[str, Any]) -> str:
    if cell["direction"] == "same":
        return badge("same", "warn")
    if not cell["significant"]:
        return badge(verdict_text(cell), "warn")
    return badge(verdict_text(cell), "ok" if cell["direction"] == "better" else "bad")


def render_html(groups: list[Group], rows: list[dict[str, Any]], out_dir: Path) -> str:
    headers = ["metric", *(f"{g.label} (n={len(g.ok_results)})" for g in groups)]
    for group in groups[1:]:
        headers += [f"{group.label} / {groups[0].label}", "verdict"]
    body_rows = []
    for row in rows:
        cells: list[object] = [row["metric"]]
        cells += [mean_text(g) for g in row["groups"]]
        for cell in row["vs_base"]:
            cells += [ratio_text(cell), _verdict_badge(cell)]
        body_rows.append(cells)
    verdict_cols = tuple(len(groups) + 2 + 2 * i for i in range(len(groups) - 1))
    runs_rows = []
    for group in groups:
        for result, path in zip(group.results, group.paths, strict=True):
            report_path = path.with_name(results.REPORT_FILE)
            link = _relative(report_path, out_dir)
            status = badge(result.get("status", "?"), "ok" if result.get("status") == "ok" else "bad")
            runs_rows.append(
                (
                    group.label,
                    f'<a href="{link}">{result.get("run_id", "?")}</a>',
                    status,
                    fmt((result.get("throughput") or {}).get("delivered_per_s")),
                )
            )
    figs = []
    for metric_name, title in (("delivered_per_s", "delivered messages / s"), ("fanout.p99", "fan-out p99 (ms)")):
        found = [r["groups"] for r in rows if r["metric"] == metric_name]
        if found:
            bars = {title: [(g["mean"], g["stdev"]) for g in found[0]]}
            svg = figures.grouped_bars(title, [g["label"] for g in found[0]], bars)
            figs.append(figure(svg, title))
    dist = {g.label: enc for g in groups if (enc := _merged_histograms(g, "fanout"))}
    first = groups[0].results[0]
    body = [
        text("h1", f"Comparison: {first.get('scenario', '?')}"),
        text(
            "p",
            "Baseline: " + groups[0].label + ". Welch's t-test at p<0.05 on repeated runs; "
            "a difference that is not significant is within noise.",
            "sub",
        ),
        h("h2", "Metrics"),
        *(
            [text("p", "Unlike loads, the comparison measures them too: " + "; ".join(differences), "muted")]
            if (differences := load_differences(groups))
            else []
        ),
        table(headers, body_rows, raw_columns=verdict_cols),
        h("div", "".join(figs), "grid2"),
        figure(figures.percentile_distribution(dist), "Fan-out latency distribution, all repeats merged"),
        h("h2", "Runs"),
        table(("config", "run", "status", "delivered/s"), runs_rows, raw_columns=(1, 2)),
        h("h2", "Environment (first run)"),
        kv_table(sorted(flatten(first.get("environment") or {}).items())),
    ]
    return page(f"bench compare: {first.get('scenario', '?')}", body)


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path.resolve(), start.resolve())


def write_outputs(groups: list[Group], rows: list[dict[str, Any]], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "schema_version": results.SCHEMA_VERSION,
        "kind": "comparison",
        "groups": [{"label": g.label, "runs": [str(p) for p in g.paths]} for g in groups],
        "load_differences": load_differences(groups),
        "metrics": rows,
    }
    (out_dir / "comparison.json").write_text(json.dumps(summary, indent=1) + "\n")
    path = out_dir / COMPARISON_FILE
    path.write_text(render_html(groups, rows, out_dir))
    return path

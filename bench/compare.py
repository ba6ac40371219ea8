"""``bench compare``: runs side by side, with a verdict per metric on whether a difference is real.

Each input is a *group* of runs of one configuration: a run directory (one run), or a directory of
run directories (repeats, as ``bench compare SCENARIO --server A --server B --repeat N`` writes them).
The first group is the baseline. For each metric we give the mean and spread of every group, the ratio
to the baseline, and Welch's t-test on the repeats (pyperf style): with fewer than two runs in a group,
significance cannot be told and we say so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from bench import figures, runner, stats
from bench import result as results
from bench import slo as slos
from bench.core.exceptions import ResultError, UsageError
from bench.core.histogram import Histogram
from bench.htmlkit import badge, figure, flatten, fmt, h, kv_table, page, table, text

DEFAULT_REPEAT: Final = 3
DEFAULT_SERVERS: Final = ("naive", "default")
COMPARISON_FILE: Final = "comparison.html"
DESCRIPTION: Final = """\
Compare runs side by side, saying for each metric whether the difference is significant.

  bench compare reports/RUN_A reports/RUN_B          existing runs (a directory of runs = repeats)
  bench compare publish --server naive --server default --repeat 3
                                                     run the scenario on each config, interleaved

Writes comparison.html (and comparison.json) and prints a table of ratios to the first input."""


@dataclass(frozen=True, slots=True)
class Metric:
    """A number taken from each result; ``lower_is_better`` decides what "better" means."""

    name: str
    extract: Callable[[dict[str, Any]], float | None]
    lower_is_better: bool
    show_zero: bool = False  # integrity counts: "0 in every run" is news; a zero rate is not


def _latency(name: str, stat: str) -> Metric:
    return Metric(f"{name}.{stat}", lambda r: slos.lookup(r, f"{name}.{stat}"), True)


def _field(path: str, lower: bool, *, show_zero: bool = False) -> Metric:
    return Metric(path, lambda r: slos.lookup(r, path), lower, show_zero)


METRICS: Final = (
    _field("delivered_per_s", False),
    _field("published_per_s", False),
    _latency("fanout", "p50"),
    _latency("fanout", "p99"),
    _latency("fanout", "p99_9"),
    _latency("fanout_last_receiver", "p99"),
    _latency("publish_rtt", "p99"),
    _latency("connect", "p99"),
    _latency("subscribe", "p99"),
    _latency("history_page", "p99"),
    _latency("reconnect", "p99"),
    _field("storm.back_95_s", True),
    _field("lost", True, show_zero=True),
    _field("duplicated", True, show_zero=True),
    _field("reordered", True, show_zero=True),
    _field("errors", True, show_zero=True),
    Metric(  # judged as the run judged it: under load, not the stop second's merge-and-write spike
        "loadgen.cpu_percent_max_under_load",
        lambda r: slos.lookup(r, "loadgen.cpu_percent_max_under_load") or slos.lookup(r, "loadgen.cpu_percent_max"),
        True,
    ),
)


@dataclass(slots=True)
class Group:
    label: str
    results: list[dict[str, Any]]
    paths: list[Path]

    def values(self, metric: Metric) -> list[float]:
        return [v for v in (metric.extract(r) for r in self.ok_results) if v is not None]

    @property
    def ok_results(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") == "ok"]


# --- loading groups ---------------------------------------------------------------------------


def load_group(path: Path) -> Group:
    """A run directory or result.json (one run), or a directory of run directories (repeats)."""
    if results.resolve(path).is_file():
        result = results.load(path)
        return Group(results.target_label(result), [result], [results.resolve(path)])
    if not path.is_dir():
        raise ResultError(f"{path}: no such run directory or result.json")
    files = sorted(p for p in path.glob(f"*/{results.RESULT_FILE}"))
    if not files:
        raise ResultError(f"{path}: holds no result.json, directly or in its subdirectories")
    loaded = [results.load(f) for f in files]
    return Group(results.target_label(loaded[0]), loaded, files)


def load_groups(path: Path) -> list[Group]:
    """The groups an input names: one (a run, or a directory of repeats), or, for the directory a
    previous ``bench compare SCENARIO --server ...`` wrote, one per config subdirectory, in the order
    they ran (the first is the baseline)."""
    if results.resolve(path).is_file() or any(path.glob(f"*/{results.RESULT_FILE}")):
        return [load_group(path)]
    configs = sorted({p.parent.parent for p in path.glob(f"*/*/{results.RESULT_FILE}")}) if path.is_dir() else []
    if not configs:
        return [load_group(path)]  # raises the right error
    groups = [load_group(config) for config in configs]
    return sorted(groups, key=lambda g: min(str(r.get("started_at", "")) for r in g.results))  # as they ran


def _unique_labels(groups: list[Group]) -> None:
    seen: dict[str, int] = {}
    for group in groups:
        n = seen.get(group.label, 0)
        seen[group.label] = n + 1
        if n:
            group.label = f"{group.label} #{n + 1}"


# --- the comparison itself ----------------------------------------------------------------------


def load_differences(groups: list[Group]) -> list[str]:
    """What differs in the offered load between the runs (scenario, users, duration, parameters...):
    a comparison of unlike loads measures the load as much as the server."""
    runs = [r for g in groups for r in g.results]

    def described(result: dict[str, Any]) -> dict[str, str]:
        load = result.get("load") or {}
        fields = {"scenario": result.get("scenario"), **{k: v for k, v in load.items() if k != "params"}}
        fields |= {f"param {k}": v for k, v in (load.get("params") or {}).items()}
        return {k: str(v) for k, v in fields.items()}

    seen = [described(r) for r in runs]
    keys = list(dict.fromkeys(k for d in seen for k in d))
    return [
        f"{key}: {' / '.join(dict.fromkeys(d.get(key, '-') for d in seen))}"
        for key in keys
        if len({d.get(key, "-") for d in seen}) > 1
    ]


def compare_groups(groups: list[Group]) -> list[dict[str, Any]]:
    """One row per metric that every group measured: means, spreads, ratios and verdicts."""
    rows = []
    base = groups[0]
    for metric in METRICS:
        samples = [g.values(metric) for g in groups]
        if any(not s for s in samples) or (not metric.show_zero and all(not any(s) for s in samples)):
            continue
        cells = []
        for group, values in zip(groups[1:], samples[1:], strict=True):
            comp = stats.compare(samples[0], values)
            cells.append({"group": group.label, **_describe(metric, comp)})
        rows.append(
            {
                "metric": metric.name,
                "lower_is_better": metric.lower_is_better,
                "groups": [
                    {
                        "label": g.label,
                        "n": len(v),
                        "mean": statistics.fmean(v),
                        "stdev": stats.spread(v),
                        "noisy": stats.is_noisy(v),
                    }
                    for g, v in zip(groups, samples, strict=True)
                ],
                "vs_base": cells,
                "base": base.label,
            }
        )
    return rows


def _describe(metric: Metric, comp: stats.Comparison) -> dict[str, Any]:
    if comp.ratio is None or comp.base_mean == comp.changed_mean:
        direction = "same"
    else:
        better = (comp.changed_mean < comp.base_mean) == metric.lower_is_better
        direction = "better" if better else "worse"
    return {
        "ratio": comp.ratio,
        "p_value": comp.p_value,
        "significant": comp.significant,
        "direction": direction,
        "verdict": comp.verdict,
    }


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


# --- output ---------------------------------------------------------------------------------------


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


# --- the command ------------------------------------------------------------------------------------


def _run_configs(args: argparse.Namespace, console: Console) -> tuple[list[Group], Path, bool]:
    """Run every config ``--repeat`` times, interleaved; returns the groups, their directory and whether
    Ctrl-C cut it short (then only the groups that ran)."""
    from bench.cli import config_requests

    scenario = args.inputs[0]
    if len(args.inputs) > 1:
        raise UsageError("give one scenario to run, or only run directories to compare")
    if args.repeat < 1:
        raise UsageError("--repeat must be at least 1")
    requests = config_requests(args, scenario, DEFAULT_SERVERS)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = args.out / f"compare-{stamp}-{requests[0].load.scenario}"
    groups = [Group(req.name, [], []) for req in requests]
    interrupted = False
    try:
        for repeat in range(args.repeat):
            for request, group in zip(requests, groups, strict=True):
                request.out_dir = out_dir / results.safe_name(group.label)
                console.print(f"[bold]run {repeat + 1}/{args.repeat}[/] of {group.label}", highlight=False)
                result, run_dir = runner.execute(request, console)
                if result["status"] != "ok":
                    console.print(f"  [red]failed[/]: {result['failure']}", highlight=False)
                group.results.append(result)
                group.paths.append(run_dir / results.RESULT_FILE)
                if result.get("failure_kind") == runner.INTERRUPTED:  # Ctrl-C ended that run: end them all
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
    return [g for g in groups if g.results], out_dir, interrupted


def command(args: argparse.Namespace, console: Console) -> int:
    from bench.cli import EXIT_INTERRUPTED, EXIT_LOADGEN, EXIT_OK, EXIT_SLO_FAILED

    paths = [Path(p) for p in args.inputs]
    if all(p.exists() for p in paths):
        if args.server or args.target:
            raise UsageError("--server and --target run a scenario; do not mix them with run directories")
        groups = [group for p in paths for group in load_groups(p)]
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        out_dir = args.out / f"compare-{stamp}"
        interrupted = False
    elif len(paths) == 1 and "/" not in args.inputs[0] and not args.inputs[0].endswith(".json"):
        groups, out_dir, interrupted = _run_configs(args, console)
        if interrupted and len(groups) < 2:
            print(f"bench compare: interrupted before two configs ran; the runs are in {out_dir}", file=sys.stderr)
            return EXIT_INTERRUPTED
    else:
        missing = next(p for p in paths if not p.exists())
        raise ResultError(f"{missing}: no such run directory or result.json")
    if len(groups) < 2:
        raise UsageError("compare needs at least two runs or configs")
    _unique_labels(groups)
    rows = compare_groups(groups)
    path = write_outputs(groups, rows, out_dir)
    console.print(console_table(groups, rows))
    if differences := load_differences(groups):
        console.print(f"[yellow]warning[/]: the runs offered unlike loads ({'; '.join(differences)})", highlight=False)
    console.print(f"comparison: {path}", highlight=False, soft_wrap=True)
    every = [r for g in groups for r in g.results]
    if interrupted:
        print("bench compare: interrupted; the comparison covers the runs that finished", file=sys.stderr)
        return EXIT_INTERRUPTED
    if any(r.get("status") != "ok" for r in every):
        return EXIT_LOADGEN
    if any((r.get("slo") or {}).get("passed") is False for r in every):
        return EXIT_SLO_FAILED
    return EXIT_OK

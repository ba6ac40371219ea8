"""A comparison of groups of runs: per metric, each group's mean and spread, the ratio to the first
group and whether the difference is significant (Welch's t-test over repeats, pyperf style).

Each group is the runs of one configuration: a run directory (one run), or a directory of run
directories (repeats). Built from result.json documents alone.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.core.exceptions import ResultError
from bench.results import run as results
from bench.results import slo as slos
from bench.results import stats


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


def unique_labels(groups: list[Group]) -> None:
    seen: dict[str, int] = {}
    for group in groups:
        n = seen.get(group.label, 0)
        seen[group.label] = n + 1
        if n:
            group.label = f"{group.label} #{n + 1}"


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

"""matplotlib figures for the reports, each returned as an inline SVG string.

Only the object-oriented API (``Figure``) is used: no pyplot global state, no GUI backend, safe to
call from any thread. Text stays text in the SVG (``svg.fonttype = none``) to keep files small.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import matplotlib as mpl
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from bench.core.histogram import Histogram
from bench.core.schema import SATURATION_PERCENT

PALETTE: Final = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
STYLE: Final[dict[Any, Any]] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "chatbench",  # stable ids: the same result renders to the same bytes
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.edgecolor": "#9ca3af",
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=list(PALETTE)),
    "legend.frameon": False,
    "legend.fontsize": 8,
}
_PERCENTILE_KEY: Final = re.compile(r"^(?P<name>.+)_p(?P<p>\d+(?:_\d+)?)_ms$")


@contextmanager
def _styled() -> Iterator[None]:
    with mpl.rc_context(STYLE):
        yield


def _new(height: float = 2.8, width: float = 7.6) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _series(
    timeseries: Sequence[dict[str, Any]], key: str, *, skip_zero: bool = False
) -> tuple[list[float], list[float]]:
    """(t, value) of one key; ``skip_zero`` for latencies, where 0 means "no sample that second"."""
    xs, ys = [], []
    for point in timeseries:
        value = point.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and "t" in point:
            if skip_zero and value == 0:
                continue
            xs.append(float(point["t"]))
            ys.append(float(value))
    return xs, ys


def _has(timeseries: Sequence[dict[str, Any]], *keys: str) -> bool:
    return any(_series(timeseries, key)[0] for key in keys)


Markers = Sequence[tuple[float, str]]  # (t, label): what the orchestrator did, drawn on time plots


def _finish_time_axis(ax: Axes, markers: Markers = ()) -> None:
    for t, label in markers:
        ax.axvline(t, color="#6b7280", linestyle="--", linewidth=0.9)
        ax.annotate(label, (t, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                    textcoords="offset points", fontsize=7, color="#4b5563")  # fmt: skip
    ax.set_xlabel("elapsed (s)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", ncols=4)


def latency_over_time(timeseries: Sequence[dict[str, Any]], markers: Markers = ()) -> str | None:
    """Per-second latency percentiles (every ``NAME_pNN_ms`` key of the time series)."""
    keys = sorted({key for point in timeseries for key in point if _PERCENTILE_KEY.match(key)})
    keys = [key for key in keys if _series(timeseries, key, skip_zero=True)[0]]
    if not keys:
        return None
    with _styled():
        fig, ax = _new()
        for key in keys:
            match = _PERCENTILE_KEY.match(key)
            assert match is not None
            label = f"{match['name']} p{match['p'].replace('_', '.')}"
            style = "-" if match["p"] in ("99", "99_9") else "--"
            ax.plot(*_series(timeseries, key, skip_zero=True), style, linewidth=1.3, label=label)
        ax.set_ylabel("latency (ms)")
        _finish_time_axis(ax, markers)
        return _svg(fig)


def _percentile_ticks(max_x: float) -> tuple[list[float], list[str]]:
    ticks, labels = [], []
    for nines in range(0, 8):
        x = 10.0**nines
        if x > max_x * 1.01 and nines > 2:
            break
        ticks.append(x)
        labels.append("0%" if nines == 0 else f"{100 - 100 / x:.{max(0, nines - 2)}f}%")
    return ticks, labels


def percentile_distribution(histograms: dict[str, dict[str, Any]]) -> str | None:
    """HdrHistogram-style plot: latency against percentile on a log ``1/(1-p)`` axis."""
    curves = []
    for name, encoded in sorted(histograms.items()):
        hist = Histogram.decode(encoded)
        if hist.count == 0:
            continue
        points = hist.distribution()
        last_fraction = 1.0 - 1.0 / (hist.count + 1)
        xs = [1.0 / (1.0 - min(p / 100.0, last_fraction)) for p, _ in points]
        ys = [v / 1000.0 for _, v in points]
        curves.append((name, [1.0, *xs], [ys[0], *ys]))
    if not curves:
        return None
    with _styled():
        fig, ax = _new(height=3.4)
        for name, xs, ys in curves:
            ax.step(xs, ys, where="pre", linewidth=1.4, label=name)
        ax.set_xscale("log")
        max_x = max(max(xs) for _, xs, _ in curves)
        ticks, labels = _percentile_ticks(max_x)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: dict(zip(ticks, labels, strict=True)).get(x, "")))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(1, max(ticks[-1], max_x))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms, log)")
        fig.legend(loc="outside right upper")
        return _svg(fig)


def lines_over_time(
    timeseries: Sequence[dict[str, Any]],
    keys: Sequence[tuple[str, str]],
    ylabel: str,
    *,
    bars: bool = False,
    markers: Markers = (),
    right: tuple[str, str, str] | None = None,
) -> str | None:
    """One line (or bar series) per ``(key, label)`` against elapsed time; ``right`` = ``(key, label,
    ylabel)`` draws one more line on its own axis at the right (a rate 50x smaller stays readable)."""
    present = [(key, label) for key, label in keys if any(_series(timeseries, key)[1])]
    if not present:
        return None
    with _styled():
        fig, ax = _new(height=2.4)
        for key, label in present:
            xs, ys = _series(timeseries, key)
            if bars:
                ax.bar(xs, ys, width=0.9, label=label, alpha=0.8)
            else:
                ax.plot(xs, ys, linewidth=1.4, label=label)
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: _compact(y)))
        if right is not None and any(_series(timeseries, right[0])[1]):
            other = ax.twinx()
            key, label, other_ylabel = right
            other.plot(*_series(timeseries, key), linewidth=1.4, linestyle="--", color="#16a34a", label=label)
            other.set_ylabel(other_ylabel)
            other.set_ylim(bottom=0)
            other.grid(False)
            other.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: _compact(y)))
            handles, labels = ax.get_legend_handles_labels()
            more_handles, more_labels = other.get_legend_handles_labels()
            _finish_time_axis(ax, markers)
            ax.legend(handles + more_handles, labels + more_labels, loc="upper left", ncols=4)
        else:
            _finish_time_axis(ax, markers)
        return _svg(fig)


def loadgen_cpu(timeseries: Sequence[dict[str, Any]], saturation: float = SATURATION_PERCENT) -> str | None:
    """The load generator's CPU over time, with the saturation line (the run's ``--saturation-percent``)."""
    keys = sorted({key for point in timeseries for key in point if key.startswith("cpu_percent")})
    keys = [key for key in keys if _has(timeseries, key)]
    if not keys:
        return None
    with _styled():
        fig, ax = _new(height=2.4)
        for key in keys:
            ax.plot(*_series(timeseries, key), linewidth=1.4, label=key.replace("_", " "))
        ax.axhline(saturation, color="#dc2626", linestyle=":", linewidth=1, label="saturation")
        ax.set_ylabel("CPU % (one core = 100)")
        _finish_time_axis(ax)
        ax.set_ylim(0, max(105.0, ax.get_ylim()[1]))
        return _svg(fig)


def recovery_curve(storm: dict[str, Any]) -> str | None:
    """Fraction of users back and resubscribed against time since the cut, with the 50/95/100% marks."""
    curve = storm.get("recovery_curve") or []
    if not curve:
        return None
    with _styled():
        fig, ax = _new(height=2.6)
        xs = [float(t) for t, _ in curve]
        ys = [100.0 * float(f) for _, f in curve]
        ax.step(xs, ys, where="post", linewidth=1.6, label="users back")
        for key, pct, color in (
            ("back_50_s", 50, PALETTE[2]),
            ("back_95_s", 95, PALETTE[3]),
            ("back_100_s", 100, PALETTE[1]),
        ):
            t = storm.get(key)
            if isinstance(t, int | float):
                ax.axvline(t, color=color, linestyle=":", linewidth=1)
                ax.annotate(f"{pct}% at {t:.2f}s", (t, pct), xytext=(4, -12), textcoords="offset points", fontsize=8)
        ax.set_xlabel("seconds since the cut")
        ax.set_ylabel("users back (%)")
        ax.set_xlim(left=0)
        ax.set_ylim(0, 105)
        return _svg(fig)


def grouped_bars(title: str, groups: Sequence[str], series: dict[str, list[tuple[float, float]]]) -> str | None:
    """Bars of mean ± spread per group (x) and series (colour); used by comparisons and capacity."""
    if not groups or not series:
        return None
    with _styled():
        fig, ax = _new(height=2.6, width=4.4)
        width = 0.8 / max(1, len(series))
        for i, (label, values) in enumerate(series.items()):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            colors = [PALETTE[g % len(PALETTE)] for g in range(len(groups))] if len(series) == 1 else None
            ax.bar(xs, [m for m, _ in values], width, yerr=[s for _, s in values], capsize=3, label=label, color=colors)
        ax.set_xticks(range(len(groups)), list(groups))
        ax.set_title(title, fontsize=9, loc="left")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: _compact(y)))
        if len(series) > 1:
            ax.legend(loc="upper left")
        return _svg(fig)


def step_curve(title: str, curves: dict[str, list[tuple[float, float, bool]]], xlabel: str, ylabel: str) -> str | None:
    """Capacity steps: one line per config, a hollow marker where the step broke the SLO."""
    if not curves:
        return None
    with _styled():
        fig, ax = _new(height=2.8, width=4.4)
        for i, (label, points) in enumerate(curves.items()):
            color = PALETTE[i % len(PALETTE)]
            ax.plot([x for x, _, _ in points], [y for _, y, _ in points], "-", color=color, label=label, linewidth=1.3)
            held = [(x, y) for x, y, ok in points if ok]
            broke = [(x, y) for x, y, ok in points if not ok]
            if held:
                ax.plot(*zip(*held, strict=True), "o", color=color, markersize=4)
            if broke:
                ax.plot(*zip(*broke, strict=True), "x", color=color, markersize=6)
        ax.set_title(title, fontsize=9, loc="left")
        xs = [x for points in curves.values() for x, _, _ in points]
        if xs and min(xs) > 0 and max(xs) / min(xs) >= 8:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _compact(x)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: _compact(y)))
        ax.legend(loc="upper left")
        return _svg(fig)


def _compact(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:g}M"
    if magnitude >= 1e3:
        return f"{value / 1e3:g}k"
    if magnitude and magnitude < 1e-2:
        return f"{value:.1e}"
    return f"{value:g}" if not math.isnan(value) else ""

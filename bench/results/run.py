"""result.json: the versioned record of one run, assembled from the load generator's metrics fragment.

Everything downstream (the summary table, report.html, compare, capacity, SLO gates) reads this one
dict, so a result can be re-rendered or compared later on another machine.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench.core.exceptions import ResultError
from bench.core.histogram import Histogram
from bench.core.schema import SATURATION_PERCENT

SCHEMA_VERSION: Final = 1
RESULT_FILE: Final = "result.json"
REPORT_FILE: Final = "report.html"
THROUGHPUT_DEFAULTS: Final = {
    "published": 0,
    "delivered": 0,
    "expected_deliveries": 0,
    "lost": 0,
    "duplicated": 0,
    "reordered": 0,
    "not_accepted": 0,
    "published_per_s": 0.0,
    "delivered_per_s": 0.0,
}
# Fields copied from the metrics fragment, with the value used when the fragment lacks them.
FRAGMENT_FIELDS: Final[dict[str, Any]] = {
    "connections": {},
    "errors": {},
    "storm": None,
    "history": None,
    "loadgen": {"processes": [], "cpu_percent_max": None, "saturated": None},
    "timeseries": [],
    "clock": None,
}


def judge_loadgen(loadgen: dict[str, Any], timeseries: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """The load generator's verdict, judged on the seconds under load.

    The last point of the series is the stop second (drain, merging and writing the metrics): its CPU
    spike is not load, so ``saturated`` leaves it out, as it leaves out a fan-out scenario's
    ``--warmup`` (the connection ramp, before any message is published: a thousand users connecting
    fill one core for seconds, but no fan-out latency is measured then); ``cpu_percent_max`` stays the
    whole-run figure. A second counts at its busiest process or, where processes share cores, at
    their summed use of them.
    """
    warmup = _number(params.get("warmup"))
    under = [p for p in timeseries[:-1] if p.get("t", 0) >= warmup] or timeseries[:-1]
    cpu = [max(float(c), float(p.get("cpu_percent_of_shared_cores") or 0))
           for p in under if isinstance(c := p.get("cpu_percent"), int | float)]  # fmt: skip
    if not cpu:
        return loadgen
    threshold = float(params.get("saturation-percent", SATURATION_PERCENT))
    under_load = max(cpu)
    return {**loadgen, "cpu_percent_max_under_load": under_load, "saturation_percent": threshold,
            "saturated": under_load > threshold}  # fmt: skip


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def safe_name(label: str) -> str:
    """A label (``default,fanout=naive``, a URL) as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")[:60] or "target"


def new_run_id(scenario: str, label: str, now: datetime | None = None) -> str:
    """``20260127-153000-publish-default-a1b2``: sortable, readable, unique."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{scenario}-{safe_name(label)[:40]}-{secrets.token_hex(2)}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def latency_from_histograms(encoded: dict[str, Any]) -> dict[str, dict[str, float | int]]:
    """``latency_ms`` recomputed from encoded histograms (the source of truth for every percentile)."""
    return {name: Histogram.decode(data).summary_ms() for name, data in encoded.items()}


def assemble(
    *,
    run_id: str,
    scenario: str,
    target: dict[str, Any],
    load: dict[str, Any],
    started_at: datetime,
    finished_at: datetime,
    fragment: dict[str, Any] | None,
    environment: dict[str, Any],
    failure: str | None,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One result dict. ``fragment`` is what the scenario wrote at stop (None if it wrote nothing).

    A run with a ``failure`` keeps whatever was measured, so a partial result still renders.
    """
    frag = fragment or {}
    histograms: dict[str, Any] = frag.get("histograms") or {}
    latency = dict(frag.get("latency_ms") or {})
    latency.update(latency_from_histograms(histograms))
    throughput = {**THROUGHPUT_DEFAULTS, **(frag.get("throughput") or {})}
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "scenario": scenario,
        "params": frag.get("params") or load.get("params") or {},
        "target": target,
        "load": load,
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "duration_s": round((finished_at - started_at).total_seconds(), 3),
        "status": "failed" if failure else "ok",
        "failure": failure,
        "environment": environment,
        "latency_ms": latency,
        "throughput": throughput,
    }
    for name, default in FRAGMENT_FIELDS.items():
        value = frag.get(name)
        result[name] = value if value is not None else default
    result["loadgen"] = judge_loadgen(result["loadgen"], result["timeseries"], result["params"])
    for name, value in frag.items():  # whatever else the scenario measured (e.g. chat's ``received``)
        result.setdefault(name, value)
    result["histograms"] = histograms
    result["events"] = events or []
    result["slo"] = {"passed": None, "verdicts": []}
    return result


def write(result: dict[str, Any], run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RESULT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, sort_keys=False, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def resolve(path: Path) -> Path:
    """The result.json a user means: the file itself, or the one inside a run directory."""
    return path / RESULT_FILE if path.is_dir() else path


def load(path: Path) -> dict[str, Any]:
    """Read and check a result.json (or a run directory holding one)."""
    file = resolve(path)
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise ResultError(f"{file}: no such result file") from None
    except (OSError, ValueError) as exc:
        raise ResultError(f"{file}: not a readable result.json ({exc})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultError(f"{file}: not a bench result (no schema_version)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ResultError(f"{file}: schema_version {data['schema_version']} (this bench reads {SCHEMA_VERSION})")
    return data


def target_label(result: dict[str, Any]) -> str:
    """A short name for what was measured: the preset/config name, or the external URL."""
    target = result.get("target") or {}
    return str(target.get("label") or target.get("url") or "?")

"""SLO expressions: ``fanout.p99<50ms``, ``lost==0``, ``delivered_per_s>100k``, ``storm.back_95_s<=10s``.

Grammar: ``METRIC OP NUMBER[SUFFIX][UNIT]`` with OP one of ``< <= > >= == !=``, SUFFIX ``k``/``M``
(thousands, millions) and, for time metrics only, UNIT ``us``/``µs``/``ms``/``s``/``min``.

Metric names resolve against a result.json:

- ``LATENCY.STAT`` (``fanout.p99``, ``connect.max``) reads ``latency_ms.LATENCY.STAT``, in milliseconds;
- a ``throughput`` key (``lost``, ``delivered_per_s``) reads ``throughput.KEY``;
- ``errors`` is the total count of errors of every reason;
- a dotted path into the result (``storm.back_95_s``, ``loadgen.cpu_percent_max``) reads that field;
  a name ending in ``_s`` is in seconds, one ending in ``_ms`` in milliseconds.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from bench.core.exceptions import UsageError
from bench.core.schema import LATENCY_NAMES

LATENCY_STATS: Final = ("count", "min", "mean", "p50", "p90", "p99", "p99_9", "max")
THROUGHPUT_KEYS: Final = (
    "published",
    "delivered",
    "expected_deliveries",
    "lost",
    "duplicated",
    "reordered",
    "published_per_s",
    "delivered_per_s",
)
SECTIONS: Final = ("throughput", "connections", "storm", "history", "loadgen")

_OPS: Final = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_TIME_UNITS_MS: Final = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0}
_SUFFIXES: Final = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}
_EXPR: Final = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"(?P<suffix>[kKM]?)\s*(?P<unit>us|µs|ms|s|min)?\s*$"
)


@dataclass(frozen=True, slots=True)
class Slo:
    """One parsed objective; ``threshold`` is in the metric's own unit (ms, s or a plain count)."""

    text: str
    metric: str
    op: str
    threshold: float
    unit: str  # "ms", "s" or ""

    def holds(self, actual: float) -> bool:
        return bool(_OPS[self.op](actual, self.threshold))


def metric_unit(metric: str) -> str:
    """The unit a metric is stored in: ``ms`` for latencies, ``s`` for ``*_s`` fields, else ``""``."""
    head, _, _ = metric.partition(".")
    if "." in metric and head not in SECTIONS:
        return "ms"
    if metric.endswith("_ms"):
        return "ms"
    if metric.endswith("_s") and not metric.endswith("_per_s"):
        return "s"
    return ""


def _check_metric(metric: str) -> None:
    head, dot, tail = metric.partition(".")
    if not dot:
        if metric not in (*THROUGHPUT_KEYS, "errors"):
            known = ", ".join((*THROUGHPUT_KEYS, "errors"))
            raise UsageError(f"unknown SLO metric {metric!r} (known: LATENCY.STAT such as fanout.p99, {known})")
        return
    if head in SECTIONS:
        return
    close = difflib.get_close_matches(head, LATENCY_NAMES, n=1, cutoff=0.75)
    if head not in LATENCY_NAMES and close:  # other names are a custom locustfile's own histograms
        raise UsageError(f"unknown latency {head!r}; did you mean {close[0]}.{tail}?")
    if tail not in LATENCY_STATS:
        raise UsageError(f"unknown latency statistic {tail!r} in SLO {metric!r} (one of {', '.join(LATENCY_STATS)})")


def parse_slo(text: str) -> Slo:
    """Parse one expression, or raise UsageError naming what is wrong with it."""
    match = _EXPR.match(text)
    if match is None:
        raise UsageError(f"cannot parse SLO {text!r}: expected METRIC OP NUMBER[UNIT], e.g. 'fanout.p99<50ms'")
    metric = match["metric"]
    _check_metric(metric)
    value = float(match["number"]) * _SUFFIXES[match["suffix"]]
    unit = metric_unit(metric)
    given = match["unit"]
    if given is not None:
        if not unit:
            raise UsageError(f"SLO {text!r}: {metric} is a count or rate, it takes no time unit")
        value = value * _TIME_UNITS_MS[given] / _TIME_UNITS_MS[unit]
    return Slo(text=text.strip(), metric=metric, op=match["op"], threshold=value, unit=unit)


def parse_slos(texts: list[str]) -> list[Slo]:
    return [parse_slo(text) for text in texts]


def lookup(result: dict[str, Any], metric: str) -> float | None:
    """The value of ``metric`` in a result.json, or None when the run did not measure it."""
    head, dot, tail = metric.partition(".")
    value: Any
    if not dot:
        if metric == "errors":
            errors = result.get("errors") or {}
            return float(sum(errors.values())) if isinstance(errors, dict) else None
        value = (result.get("throughput") or {}).get(metric)
    elif head in SECTIONS:
        value = result.get(head)
        for part in tail.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    else:
        stats = (result.get("latency_ms") or {}).get(head)
        value = stats.get(tail) if isinstance(stats, dict) and stats.get("count") else None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def evaluate(slos: list[Slo], result: dict[str, Any]) -> dict[str, Any]:
    """The ``slo`` section of result.json: a verdict per objective and ``passed`` for all of them.

    An objective whose metric the run did not measure fails: a gate must not pass on missing data.
    ``passed`` is None when there are no objectives.
    """
    verdicts = []
    for slo in slos:
        actual = lookup(result, slo.metric)
        verdicts.append(
            {
                "expr": slo.text,
                "metric": slo.metric,
                "op": slo.op,
                "threshold": slo.threshold,
                "unit": slo.unit,
                "actual": actual,
                "passed": actual is not None and slo.holds(actual),
                "note": "not measured by this run" if actual is None else "",
            }
        )
    return {"passed": all(v["passed"] for v in verdicts) if verdicts else None, "verdicts": verdicts}

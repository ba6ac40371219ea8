"""The console summary of a run, from its result alone."""

from __future__ import annotations

import io

from rich.console import Console

from bench.report import summary
from tests.utils.sample import sample_result


def _printed(result: dict[str, object]) -> str:
    out = io.StringIO()
    summary.print_run(Console(file=out, width=200), result, "reports/x/report.html")
    return out.getvalue()


def test_history_line_counts_pages_and_messages() -> None:
    result = sample_result(storm=False)
    result["history"] = {"pages": 54, "pages_per_s": 4.15, "messages": 304, "contiguous": True, "duplicates": 0,
                         "gaps": 0}  # fmt: skip
    assert "history: 54 pages (4.15/s), 304 messages · contiguous yes" in _printed(result)


def test_latencies_in_the_order_a_user_meets_them() -> None:
    result = sample_result()
    latency = result["latency_ms"]
    latency["handshake"] = latency["token"] = dict(latency["connect"])  # listed last in the result
    text = _printed(result)
    names = [name for name in ("token", "connect", "handshake", "subscribe", "publish_rtt", "fanout") if name in text]
    assert len(names) == 6 and sorted(names, key=text.index) == names


def test_an_unmeasured_objective_says_so() -> None:
    result = sample_result()
    result["slo"] = {"passed": False, "verdicts": [{"expr": "checkout.p99<5ms", "metric": "checkout.p99", "op": "<",
                     "threshold": 5.0, "unit": "ms", "actual": None, "passed": False}]}  # fmt: skip
    assert "SLO FAIL  checkout.p99<5ms  (not measured)" in _printed(result)

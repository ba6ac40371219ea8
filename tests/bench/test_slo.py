"""SLO expressions: parsing, units, unknown metrics, and evaluation against a result."""

from __future__ import annotations

import pytest

from bench.core.exceptions import UsageError
from bench.results import slo
from tests.utils.sample import sample_result


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold", "unit"),
    [
        ("fanout.p99<50ms", "fanout.p99", "<", 50.0, "ms"),
        ("fanout.p99 < 0.05s", "fanout.p99", "<", 50.0, "ms"),
        ("publish_rtt.p99_9<=1500us", "publish_rtt.p99_9", "<=", 1.5, "ms"),
        ("lost==0", "lost", "==", 0.0, ""),
        ("delivered_per_s>100k", "delivered_per_s", ">", 100_000.0, ""),
        ("delivered_per_s>=1.5M", "delivered_per_s", ">=", 1_500_000.0, ""),
        ("storm.back_95_s<=10s", "storm.back_95_s", "<=", 10.0, "s"),
        ("storm.back_95_s<2000ms", "storm.back_95_s", "<", 2.0, "s"),
        ("errors!=3", "errors", "!=", 3.0, ""),
        ("loadgen.cpu_percent_max<90", "loadgen.cpu_percent_max", "<", 90.0, ""),
        ("connect.max<1min", "connect.max", "<", 60_000.0, "ms"),
        ("checkout.p99<20ms", "checkout.p99", "<", 20.0, "ms"),  # a custom locustfile's own histogram
    ],
)
def test_parse(text: str, metric: str, op: str, threshold: float, unit: str) -> None:
    parsed = slo.parse_slo(text)
    assert (parsed.metric, parsed.op, parsed.unit) == (metric, op, unit)
    assert parsed.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("fanout.p99", "cannot parse"),
        ("fanout.p99<<5", "cannot parse"),
        ("fanout.p98<5ms", "unknown latency statistic"),
        ("lots==0", "unknown SLO metric"),
        ("lost==0ms", "takes no time unit"),
        ("fanout.p99<fast", "cannot parse"),
        ("fanot.p99<5ms", "did you mean fanout.p99"),
        ("handshak.max<1s", "did you mean handshake.max"),
    ],
)
def test_parse_errors(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        slo.parse_slo(text)


def test_evaluate_against_result() -> None:
    result = sample_result()
    fanout_p99 = result["latency_ms"]["fanout"]["p99"]
    section = slo.evaluate(
        slo.parse_slos(
            [f"fanout.p99<{fanout_p99 + 1}ms", "lost==0", "delivered_per_s>100k", "storm.back_95_s<=2.5s", "errors<1"]
        ),
        result,
    )
    verdicts = {v["expr"]: v for v in section["verdicts"]}
    assert verdicts[f"fanout.p99<{fanout_p99 + 1}ms"]["actual"] == fanout_p99
    assert [v["passed"] for v in section["verdicts"]] == [True, True, False, True, False]
    assert section["passed"] is False


def test_unmeasured_metric_fails_the_gate() -> None:
    result = sample_result()
    section = slo.evaluate([slo.parse_slo("history_page.p99<10ms")], result)
    assert section["passed"] is False
    assert section["verdicts"][0]["actual"] is None
    assert "not measured" in section["verdicts"][0]["note"]


def test_no_objectives() -> None:
    assert slo.evaluate([], sample_result()) == {"passed": None, "verdicts": []}

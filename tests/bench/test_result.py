"""result.json assembly, writing and reading back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.core.exceptions import ResultError
from bench.core.histogram import Histogram
from bench.results import run as results
from tests.utils.sample import fragment, sample_result

REQUIRED = (
    "schema_version", "scenario", "target", "load", "started_at", "duration_s", "environment", "latency_ms",
    "throughput", "connections", "errors", "storm", "loadgen", "slo", "timeseries", "histograms", "status",
)  # fmt: skip


def test_assembled_result_has_every_field() -> None:
    result = sample_result()
    for key in REQUIRED:
        assert key in result, key
    assert result["schema_version"] == results.SCHEMA_VERSION
    assert result["status"] == "ok" and result["failure"] is None
    assert set(result["throughput"]) >= set(results.THROUGHPUT_DEFAULTS)
    for key in ("cpu_model", "cpu_count_logical", "python", "packages", "git", "hostname", "os"):
        assert key in result["environment"], key
    assert result["environment"]["packages"]["locust"]


def test_latency_is_recomputed_from_the_histograms() -> None:
    result = sample_result()
    for name, encoded in result["histograms"].items():
        assert result["latency_ms"][name] == Histogram.decode(encoded).summary_ms()


def test_failed_run_without_metrics_still_assembles() -> None:
    now = datetime.now(UTC)
    result = results.assemble(
        run_id="x", scenario="publish", target={"label": "default"}, load={"users": 1}, started_at=now,
        finished_at=now + timedelta(seconds=2), fragment=None, environment={}, failure="server died",
    )  # fmt: skip
    assert result["status"] == "failed" and result["failure"] == "server died"
    assert result["latency_ms"] == {} and result["throughput"]["lost"] == 0
    assert result["timeseries"] == [] and result["storm"] is None
    assert result["duration_s"] == 2.0


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    result = sample_result()
    path = results.write(result, tmp_path / "run")
    assert path.name == "result.json"
    assert results.load(tmp_path / "run") == results.load(path) == json.loads(json.dumps(result))


@pytest.mark.parametrize(
    ("content", "complaint"),
    [(None, "no such result file"), ("{not json", "not a readable"), ("[1]", "not a bench result"),
     ('{"schema_version": 99}', "schema_version 99")],
)  # fmt: skip
def test_load_rejects_bad_files(tmp_path: Path, content: str | None, complaint: str) -> None:
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ResultError, match=complaint):
        results.load(path)


def test_run_ids_are_unique_and_readable() -> None:
    ids = {results.new_run_id("publish", "default,fanout=naive") for _ in range(50)}
    assert len(ids) == 50
    assert all("-publish-default_fanout_naive-" in i for i in ids)


def test_fragment_fields_pass_through() -> None:
    frag = fragment()
    result = sample_result()
    for key in ("connections", "errors", "storm", "timeseries", "clock"):
        assert result[key] == frag[key]
    assert result["loadgen"].items() >= {k: v for k, v in frag["loadgen"].items() if k != "saturated"}.items()


def test_saturation_is_judged_under_load() -> None:
    series = [{"t": i, "cpu_percent": c} for i, c in enumerate([20.0, 50.0, 40.0, 120.0])]
    judged = results.judge_loadgen({"cpu_percent_max": 120.0, "saturated": True}, series, {})
    assert judged == {"cpu_percent_max": 120.0, "saturated": False, "cpu_percent_max_under_load": 50.0,
                      "saturation_percent": 90.0}  # fmt: skip
    strict = results.judge_loadgen({"cpu_percent_max": 120.0}, series, {"saturation-percent": 45})
    assert strict["saturated"] is True
    assert results.judge_loadgen({"saturated": True}, [], {}) == {"saturated": True}


def test_the_warmup_ramp_is_not_saturation() -> None:
    """A thousand users connecting fill the core before anything is published: not the measured load."""
    series = [{"t": i, "cpu_percent": c} for i, c in enumerate([99.0, 98.0, 97.0, 40.0, 45.0, 120.0])]
    judged = results.judge_loadgen({}, series, {"warmup": "3"})
    assert judged["saturated"] is False and judged["cpu_percent_max_under_load"] == 45.0
    assert results.judge_loadgen({}, series, {})["saturated"] is True  # no warm-up: the ramp is the load

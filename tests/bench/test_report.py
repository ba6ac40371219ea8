"""report.html: self-contained, and its numbers are the ones in result.json."""

from __future__ import annotations

from pathlib import Path

from bench.cli.main import main
from bench.report import figures
from bench.report import run as report
from bench.results import run as results
from bench.results import slo
from tests.utils import assert_matches_result, assert_self_contained
from tests.utils.sample import sample_result


def _with_slos(result: dict, *exprs: str) -> dict:
    result["slo"] = slo.evaluate(slo.parse_slos(list(exprs)), result)
    return result


def test_report_is_self_contained_and_faithful() -> None:
    result = _with_slos(sample_result(), "fanout.p99<50ms", "lost==0", "delivered_per_s>100k")
    html = report.render(result)
    assert_self_contained(html)
    assert_matches_result(html, result)
    assert "SLO failed" in html and html.count("badge ok") >= 2 and "FAIL" in html
    assert html.count("<svg") >= 6  # distribution, latency/time, rates, users, errors, storm, cpu
    for section in (
        "Percentile distribution",
        "Reconnect storm",
        "Load generator",
        "Server configuration",
        "Environment",
        result["environment"]["cpu_model"],
    ):
        assert section in html, section


def test_failed_run_is_marked() -> None:
    result = sample_result()
    result["status"], result["failure"] = "failed", "bundled server exited with code -9 mid-run"
    html = report.render(result)
    assert "Run failed: bundled server exited with code -9 mid-run" in html


def test_report_without_metrics_renders() -> None:
    result = sample_result()
    for key in ("latency_ms", "histograms", "timeseries"):
        result[key] = {} if key != "timeseries" else []
    result["storm"] = None
    html = report.render(result)
    assert "No latency was measured" in html and "Reconnect storm" not in html


def test_bench_report_command(tmp_path: Path, capsys) -> None:
    result = _with_slos(sample_result(), "lost==0")
    results.write(result, tmp_path / "run")
    assert main(["report", str(tmp_path / "run")]) == 0
    html = (tmp_path / "run" / "report.html").read_text()
    assert_matches_result(html, result)
    assert main(["report", str(tmp_path / "run" / "result.json"), "-o", str(tmp_path / "other.html")]) == 0
    assert (tmp_path / "other.html").read_text() == html


def test_bench_report_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such result file" in err


def test_a_scenario_without_messages_gets_no_message_sections() -> None:
    result = sample_result(storm=False)
    result["throughput"] = {key: 0 for key in result["throughput"]}
    result["history"] = {"pages": 890, "pages_per_s": 178.0, "contiguous": True, "duplicates": 0, "gaps": 0}
    html = report.render(result)
    assert "Throughput and delivery integrity" not in html and "DELIVERED / S" not in html.upper().split("<H2")[0]
    assert "history pages / s" in html and "exact" in html and "History paging" in html


def test_orchestrator_events_are_placed_on_the_series_clock() -> None:
    result = sample_result()
    for point in result["timeseries"]:
        point["epoch_s"] = 1_000 + point["t"]
    result["events"] = [
        {"t": 6.0, "epoch": 1_005.5, "kind": "server restart", "event": "restarting the server (reconnect storm)"},
        {"t": 6.4, "epoch": 1_005.9, "kind": "server back", "event": "server back on http://127.0.0.1:1"},
    ]
    assert report.event_markers(result) == [(5.5, "server restart")]
    html = report.render(result)
    assert html.count("server restart") >= 3 and "restarting the server (reconnect storm)" in html


def test_published_rate_has_its_own_axis() -> None:
    """200 msg/s published beside 10k/s delivered: on one axis the published line would lie flat on zero."""
    html = report.render(sample_result())
    assert "published/s (right axis)" in html


def test_http_only_scenario_shows_no_table_of_zero_connections() -> None:
    result = sample_result(storm=False)
    result["connections"] = {"peak": 0, "opened": 0, "failed": 0, "closed": 0, "attempts": 0, "subscribed": 0}
    html = report.render(result)
    assert "Users and open connections" in html and ">subscribed</th>" not in html


def test_saturation_line_is_the_runs_threshold() -> None:
    result = sample_result()
    result["loadgen"]["saturation_percent"] = 45.0
    drawn = figures.loadgen_cpu(result["timeseries"], 45.0)
    assert drawn is not None and drawn != figures.loadgen_cpu(result["timeseries"])
    assert drawn in report.render(result)

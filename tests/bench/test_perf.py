"""``bench perf``: the ratio verdicts from a report alone, and ``--quick`` end to end (bounded)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bench.cli.main import EXIT_OK, EXIT_SLO_FAILED, EXIT_USAGE
from bench.report.perf_report import ratios, render_html
from tests.utils import TIMEOUT, assert_self_contained, bench


def _report(default: float | None, naive: float, ours: float, theirs: float) -> dict[str, Any]:
    capacity = [{"config": "default", "delivered_per_s": default}, {"config": "naive", "delivered_per_s": naive}]
    clients = {"ours": {"msgs_per_cpu_s": ours}, "websocket-client": {"msgs_per_cpu_s": theirs}}
    return {"capacity": capacity, "loadgen": {"clients": clients}}


def test_ratios_against_the_targets() -> None:
    rows = {r["target"]: r for r in ratios(_report(100_000, 9_000, 300_000, 120_000))}
    assert set(rows) == {"capacity at the SLO: default / naive", "client msgs per CPU-second: ours / websocket-client"}
    naive = rows["capacity at the SLO: default / naive"]
    assert naive["ratio"] == pytest.approx(100_000 / 9_000) and naive["met"] is True
    client = rows["client msgs per CPU-second: ours / websocket-client"]
    assert client["ratio"] == pytest.approx(2.5) and client["met"] is False


def test_a_config_that_never_held_has_no_verdict() -> None:
    [row, _] = ratios(_report(None, 9_000, 1, 1))
    assert row["ratio"] is None and row["met"] is None


@pytest.mark.parametrize(
    ("default", "naive", "bound", "met"),
    [(100_000, 9_000, "default", True), (50_000, 9_000, "default", None),  # ours a lower bound: only "met"
     (100_000, 9_000, "naive", None), (50_000, 9_000, "naive", False)],  # theirs a lower bound: only "missed"
)  # fmt: skip
def test_a_capacity_the_load_generator_stopped_is_a_lower_bound(
    default: float, naive: float, bound: str, met: bool | None
) -> None:
    report = _report(default, naive, 1, 1)
    for row in report["capacity"]:
        row["loadgen_bound"] = row["config"] == bound
    [row, _] = ratios(report)
    assert row["met"] is met and row["loadgen_bound"] == [bound]


def test_latency_at_a_fixed_load_is_judged_against_the_best_peer() -> None:
    def row(config: str, p99: float, saturated: bool = False, lag: float = 1.0) -> dict[str, Any]:
        return {"config": config, "offered_deliveries_per_s": 40_000, "fanout_p99_ms": p99,
                "loadgen_saturated": saturated, "loadgen_loop_lag_p99_ms": lag}  # fmt: skip

    def verdict(*rows: dict[str, Any]) -> bool | None:
        [target] = [r for r in ratios({"latency": {"rows": list(rows)}}) if r["target"].startswith("p99 at")]
        return target["met"]  # type: ignore[no-any-return]

    assert verdict(row("default", 7.0), row("peer:node-ws", 6.6), row("peer:picows", 5.1)) is True  # <= 7.12
    assert verdict(row("default", 7.2), row("peer:node-ws", 6.6), row("peer:picows", 5.1)) is False
    assert verdict(row("default", 7.2), row("peer:picows", 5.1, saturated=True)) is None  # proves nothing
    assert verdict(row("default", 49.7, lag=35.0), row("peer:node-ws", 64.1, lag=30.0)) is None  # nor this


def test_bad_options_are_usage_errors() -> None:
    proc = bench("perf", "--quick", "--max-steps", "0")
    assert proc.returncode == EXIT_USAGE and "must be positive" in proc.stderr


def test_capacity_confirm_must_not_be_negative() -> None:
    proc = bench("capacity", "publish", "--confirm", "-1")
    assert proc.returncode == EXIT_USAGE and "--confirm >= 0" in proc.stderr


def test_quick_end_to_end(tmp_path: Path) -> None:
    """Every part on a small scale, the bundled default and naive (peers are optional installs)."""
    proc = bench("perf", "--quick", "--server", "default", "--server", "naive", "--out", str(tmp_path), "--quiet",
                 timeout=40 * TIMEOUT)  # fmt: skip  # 14 runs; about 100 s on a 2-core machine
    assert proc.returncode in (EXIT_OK, EXIT_SLO_FAILED), proc.stderr + proc.stdout
    [out] = tmp_path.glob("perf-*")
    report = json.loads((out / "perf.json").read_text())
    assert report["kind"] == "perf" and report["parts"] == ["capacity", "latency", "cost", "loadgen", "memory"]
    assert report["pinning"]["pinned"] is (len(os.sched_getaffinity(0)) >= 2)
    latency = report["latency"]
    assert [(r["config"], r["offered_deliveries_per_s"]) for r in latency["rows"]] == [("default", 240), ("naive", 240)]
    assert all(r["status"] == "ok" and r["fanout_p99_ms"] and r["lost"] == 0 for r in latency["rows"])
    assert all(r["loadgen_loop_lag_p99_ms"] is not None for r in latency["rows"])
    assert [row["config"] for row in latency["capacity"]] == ["default", "naive"]
    assert [row["config"] for row in report["capacity"]] == ["default", "naive"]
    assert all(row["highest_held"] for row in report["capacity"]), report["capacity"]
    assert [c["config"] for c in report["cost"]] == ["default", "naive"]
    assert all(c["server_us_per_delivery"] > 0 and c["loadgen_us_per_delivery"] > 0 for c in report["cost"])
    assert all(c["steps"] for c in report["loadgen"]["clients"].values())
    assert [m["server"] for m in report["memory"]["servers"]] == ["default", "naive"]
    assert all(m["server_bytes_per_conn"] > 0 for m in report["memory"]["servers"])
    assert report["memory"]["loadgen"]["bytes_per_conn"] > 0
    parts = {r["target"].split(":")[0] for r in report["ratios"]}
    assert parts == {"capacity at the SLO", "client msgs per CPU-second"}
    html = (out / "perf.html").read_text()
    assert_self_contained(html)
    assert html == render_html(report)
    assert (out / "capacity" / "capacity.html").is_file()
    assert "targets (ratios from this run)" in proc.stdout

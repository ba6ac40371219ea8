"""``bench compare`` (configs with repeats, and existing runs) and ``bench capacity`` end to end."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli.main import EXIT_OK
from tests.utils import REPO, TIMEOUT, TINY_PUBLISH, RunningServer, assert_self_contained, bench, read_result, run_dirs


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("compare")
    proc = bench("compare", "publish", "--server", "naive", "--server", "default", "--repeat", "2", "-t", "2",
                 *TINY_PUBLISH, "--out", str(out), "--quiet")  # fmt: skip
    return proc, out


def test_compare_configs_with_repeats(compared: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = compared
    assert proc.returncode == EXIT_OK, proc.stderr + proc.stdout
    [cmp_dir] = out.glob("compare-*")
    assert sorted(p.name for p in cmp_dir.iterdir() if p.is_dir()) == ["default", "naive"]
    assert len(run_dirs(cmp_dir / "naive")) == len(run_dirs(cmp_dir / "default")) == 2
    summary = json.loads((cmp_dir / "comparison.json").read_text())
    assert [g["label"] for g in summary["groups"]] == ["naive", "default"]
    rows = {row["metric"]: row for row in summary["metrics"]}
    delivered = rows["delivered_per_s"]
    runs = [read_result(d) for d in run_dirs(cmp_dir / "naive")]
    assert delivered["groups"][0]["n"] == 2
    assert delivered["groups"][0]["mean"] == pytest.approx(sum(r["throughput"]["delivered_per_s"] for r in runs) / 2)
    cell = rows["fanout.p99"]["vs_base"][0]
    assert cell["p_value"] is not None and cell["significant"] in (True, False)
    html = (cmp_dir / "comparison.html").read_text()
    assert_self_contained(html)
    assert "naive" in html and "default" in html and "fanout.p99" in html
    assert re.search(r"default ratio", proc.stdout) and "significant" in proc.stdout


def test_compare_existing_run_dirs(compared: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path) -> None:
    _, out = compared
    [cmp_dir] = out.glob("compare-*")
    naive_run = run_dirs(cmp_dir / "naive")[0]
    proc = bench("compare", str(naive_run), str(cmp_dir / "default"), "--out", str(tmp_path))
    assert proc.returncode == EXIT_OK, proc.stderr
    [new_dir] = tmp_path.glob("compare-*")
    summary = json.loads((new_dir / "comparison.json").read_text())
    assert [len(g["runs"]) for g in summary["groups"]] == [1, 2]
    assert "need --repeat" in proc.stdout  # one run against two: significance cannot be told
    html = (new_dir / "comparison.html").read_text()
    assert 'href="../' in html  # links to each run's report.html


def test_compare_again_from_a_comparison_directory(
    compared: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    _, out = compared
    [cmp_dir] = out.glob("compare-*")
    proc = bench("compare", str(cmp_dir), "--out", str(tmp_path))
    assert proc.returncode == EXIT_OK, proc.stderr
    [new_dir] = tmp_path.glob("compare-*")
    summary = json.loads((new_dir / "comparison.json").read_text())
    assert [(g["label"], len(g["runs"])) for g in summary["groups"]] == [("naive", 2), ("default", 2)]


def test_capacity_finds_the_highest_step_that_held(tmp_path: Path) -> None:
    proc = bench("capacity", "publish", "--server", "default", "--step-param", "rate", "--start", "5", "--factor",
                 "6", "--max-steps", "3", "--refine", "0", "-t", "2", "--slo", "published_per_s<10",
                 *TINY_PUBLISH, "--out", str(tmp_path), "--quiet")  # fmt: skip
    assert proc.returncode == EXIT_OK, proc.stderr + proc.stdout
    [cap_dir] = tmp_path.glob("capacity-*")
    data = json.loads((cap_dir / "capacity.json").read_text())
    assert data["objectives"] == ["published_per_s<10", "lost==0"]
    [config] = data["configs"]
    assert config["config"] == "default"
    assert config["highest_held"] == 5 and config["first_broken"] == 30
    assert [s["held"] for s in config["steps"]] == [True, False]
    assert "published_per_s<10" in config["broke_on"]
    assert config["delivered_per_s"] > 0
    html = (cap_dir / "capacity.html").read_text()
    assert_self_contained(html)
    assert "Capacity: publish" in html
    assert re.search(r"default\s+│\s+5 ", proc.stdout)


def test_capacity_lowers_from_a_start_that_already_broke(tmp_path: Path) -> None:
    """A start above the config's limit still gives a figure: the search goes down until a step holds."""
    proc = bench("capacity", "publish", "--server", "default", "--step-param", "rate", "--start", "30", "--factor",
                 "6", "--max-steps", "3", "--refine", "0", "-t", "2", "--slo", "published_per_s<10",
                 *TINY_PUBLISH, "--out", str(tmp_path), "--quiet")  # fmt: skip
    assert proc.returncode == EXIT_OK, proc.stderr + proc.stdout
    [cap_dir] = tmp_path.glob("capacity-*")
    [config] = json.loads((cap_dir / "capacity.json").read_text())["configs"]
    assert [(s["value"], s["held"]) for s in config["steps"]] == [(5, True), (30, False)]
    assert config["highest_held"] == 5 and config["first_broken"] == 30 and config["loadgen_bound"] is False


def test_bench_serve_is_the_bundled_server() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bench", "serve", "--port", "0", "--config", "naive"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.match(r"chat server listening on http://127\.0\.0\.1:\d+ \(preset naive\)", line), line
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(3 * TIMEOUT) == 0


def test_compare_a_bundled_config_with_an_external_target(tmp_path: Path, server: RunningServer) -> None:
    proc = bench("compare", "publish", "--server", "naive", "--target", server.url, "--repeat", "1", "-t", "1",
                 *TINY_PUBLISH, "--out", str(tmp_path), "--quiet")  # fmt: skip
    assert proc.returncode == EXIT_OK, proc.stderr + proc.stdout
    [cmp_dir] = tmp_path.glob("compare-*")
    summary = json.loads((cmp_dir / "comparison.json").read_text())
    assert [g["label"] for g in summary["groups"]] == ["naive", server.url]
    [external] = run_dirs(cmp_dir / summary["groups"][1]["runs"][0].split("/")[-3])
    assert read_result(external)["target"]["kind"] == "external"


@pytest.mark.parametrize("command", ["capacity", "compare"])
def test_ctrl_c_ends_the_whole_search_with_exit_130(tmp_path: Path, command: str) -> None:
    """Ctrl-C during one step stops there (no further steps or configs run) and says so in the exit code."""
    args = {
        "capacity": ["capacity", "subscribe", "--start", "4", "--max-steps", "4"],
        "compare": ["compare", "subscribe", "--server", "naive", "--server", "default", "--repeat", "2", "-u", "4"],
    }[command]
    argv = [sys.executable, "-m", "bench", *args, "-t", "30", "-r", "50", "--out", str(tmp_path), "--quiet"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10 * TIMEOUT
        while not any(p.stat().st_size for p in tmp_path.rglob("live.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=12 * TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert len(run_dirs(tmp_path)) == 1, "no step or config ran after the interrupt"
    assert "interrupted" in err

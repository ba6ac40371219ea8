"""``bench run`` end to end against the bundled server: result.json, report.html, SLO exit codes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import trustme

from bench.results import run as results
from server_under_test.config import DEFAULT_JWT_SECRET
from tests.utils import (
    REPO,
    TIMEOUT,
    TINY_PUBLISH,
    RunningServer,
    assert_matches_result,
    assert_self_contained,
    bench,
    read_result,
    run_dirs,
    start_server,
)


def test_run_publish_writes_result_and_report(tmp_path: Path) -> None:
    proc = bench("run", "publish", "-t", "3", *TINY_PUBLISH, "--out", str(tmp_path), "--quiet",
                 "--slo", "lost==0", "--slo", "fanout.p99<10s", "--slo", "publish_rtt.p50<1us")  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the 1 µs objective fails: its own exit code
    [run_dir] = run_dirs(tmp_path)
    result = read_result(run_dir)
    assert result["schema_version"] == results.SCHEMA_VERSION
    assert result["status"] == "ok", result["failure"]
    assert result["scenario"] == "publish" and result["target"]["kind"] == "bundled"
    assert result["command"].startswith("bench run publish -t 3 --param channels=1")
    assert result["target"]["label"] == "default" and result["target"]["config"]["fanout"]
    assert result["load"]["users"] == 5 and result["load"]["duration_s"] == 3
    thr = result["throughput"]
    assert thr["published"] > 0 and thr["delivered"] == thr["expected_deliveries"] >= 4 * (thr["published"] - 2)
    assert thr["lost"] == thr["duplicated"] == 0
    for name in ("connect", "subscribe", "publish_rtt", "fanout", "fanout_uncorrected", "fanout_last_receiver"):
        assert result["latency_ms"][name]["count"] > 0, name
        assert name in result["histograms"], name
    assert [v["passed"] for v in result["slo"]["verdicts"]] == [True, True, False]
    assert result["slo"]["passed"] is False
    assert result["timeseries"] and result["loadgen"]["cpu_percent_max"] is not None
    assert result["environment"]["git"] and result["environment"]["python"]["version"]
    html = (run_dir / "report.html").read_text()
    assert_self_contained(html)
    assert_matches_result(html, result)
    assert "SLO failed" in html
    assert "publish on default" in proc.stdout and "fanout" in proc.stdout
    assert "SLO FAIL  publish_rtt.p50<1us" in proc.stdout
    assert proc.stderr == f"bench run: SLO failed: publish_rtt.p50<1us (see {run_dir / 'report.html'})\n"
    assert str(run_dir / "report.html") in proc.stdout


def _server_child(bench_pid: int, deadline: float) -> psutil.Process:
    while time.monotonic() < deadline:
        for child in psutil.Process(bench_pid).children(recursive=True):
            try:
                if "server_under_test" in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise AssertionError("the bundled server never started")


def test_server_dying_mid_run_writes_a_failed_result(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "publish", "-t", "30", *TINY_PUBLISH, "--out", str(tmp_path), "--quiet"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        server = _server_child(proc.pid, time.monotonic() + 6 * TIMEOUT)
        while not list(tmp_path.rglob("live.jsonl")) and proc.poll() is None:  # the load is running
            time.sleep(0.1)
        time.sleep(1.0)
        server.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=12 * TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    [run_dir] = run_dirs(tmp_path)
    result = read_result(run_dir)
    assert result["status"] == "failed" and result["failure_kind"] == "server_died"
    assert re.search(r"exited with code -9 mid-run", result["failure"])
    assert result["duration_s"] < 25
    html = (run_dir / "report.html").read_text()
    assert "Run failed: " in html and "mid-run" in html
    assert "FAILED" in out
    [line] = err.splitlines()  # one line on stderr for CI logs, naming the reason and the partial result
    assert line.startswith("bench run: failed: ") and "mid-run" in line and str(run_dir / "result.json") in line


def test_ctrl_c_stops_cleanly_and_keeps_the_partial_result(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "publish", "-t", "30", *TINY_PUBLISH, "--out", str(tmp_path), "--quiet"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10 * TIMEOUT
        while not any(p.stat().st_size for p in tmp_path.rglob("live.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.1)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=12 * TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    [run_dir] = run_dirs(tmp_path)
    result = read_result(run_dir)
    assert result["status"] == "failed" and result["failure"] == "interrupted by the user"
    assert result["throughput"]["published"] > 0  # what was measured before the interrupt is kept
    assert (run_dir / "report.html").is_file()
    psutil.wait_procs(children, timeout=2 * TIMEOUT)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], "children left behind"


@pytest.mark.parametrize("auth", [["--auth", "login"], ["--auth", "secret", "--jwt-secret", DEFAULT_JWT_SECRET]])
def test_run_against_an_external_target(tmp_path: Path, server: RunningServer, auth: list[str]) -> None:
    proc = bench("run", "publish", "--target", server.url, *auth, "-t", "2", *TINY_PUBLISH, "--out", str(tmp_path),
                 "--quiet", "--slo", "lost==0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    [run_dir] = run_dirs(tmp_path)
    result = read_result(run_dir)
    assert result["target"] == {"kind": "external", "label": server.url, "url": server.url, "ws_path": "/ws",
                                "auth": auth[1], "protocol": "chat"}  # fmt: skip
    assert result["throughput"]["delivered"] > 0 and result["errors"] == {}
    assert not (run_dir / "server.log").exists()


def test_storm_restart_mode_restarts_the_bundled_server(tmp_path: Path) -> None:
    proc = bench("run", "reconnect_storm", "-t", "7", "--param", "storm_mode=restart", "--param", "storm_at=2",
                 "--param", "channels=1", "--param", "subscribers_per_channel=4", "--param", "publishers=1",
                 "--out", str(tmp_path), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    [run_dir] = run_dirs(tmp_path)
    result = read_result(run_dir)
    assert result["target"]["restarts"] == 1
    assert [e["event"].split(" ")[0] for e in result["events"]] == ["restarting", "server"]
    # the time series is on whole seconds: the closes the restart caused are not in a point before it
    first_error = next(p for p in result["timeseries"] if p["errors"])
    assert first_error["epoch_s"] >= int(result["events"][0]["epoch"])
    storm = result["storm"]
    assert storm["users"] == 5 and storm["gave_up"] == 0 and storm["back_100_s"] is not None
    assert result["throughput"]["lost"] == 0
    assert "storm: 5 users cut" in proc.stdout
    assert "Recovery: users back and resubscribed" in (run_dir / "report.html").read_text()


def test_https_target_with_a_test_certificate(tmp_path: Path) -> None:
    """Without --insecure a self-signed target is refused up front, with the hint; with it, the checks
    pass and the load users are told (--tls-insecure on)."""
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    out = tmp_path / "out"
    with start_server("default", f"tls_cert={cert_path}", f"tls_key={key_path}") as server:
        refused = bench("run", "publish", "--target", server.url, "-t", "1", *TINY_PUBLISH, "--out", str(out))
        assert refused.returncode == 3 and "certificate refused" in refused.stderr and "--insecure" in refused.stderr
        proc = bench("run", "publish", "--target", server.url, "--insecure", "-t", "1", *TINY_PUBLISH,
                     "--out", str(out), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    [run_dir] = run_dirs(out)
    result = read_result(run_dir)
    assert result["target"]["url"].startswith("https://") and result["target"]["tls_insecure"] is True
    assert "--tls-insecure on" in (run_dir / "locust.log").read_text()

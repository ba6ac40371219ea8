"""Each scenario, briefly, with the real Locust against the real bundled server: sane figures."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bench.harness.locust import free_port
from tests.utils import REPO, TIMEOUT, RunningServer, run_scenario, start_server

CONNECTION_LATENCIES = {"connect", "token", "handshake", "subscribe"}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_server("default") as running:
        yield running


def test_publish_defaults_lose_nothing_and_deliver_what_was_expected(server: RunningServer) -> None:
    run = run_scenario("publish", server.url, users=44, seconds=4)
    result = run.result
    throughput = result["throughput"]
    assert result["scenario"] == "publish"
    assert result["params"]["channels"] == 4 and result["params"]["jwt-secret"] == ""
    assert throughput["published"] > 4 * 10 * 2
    assert throughput["lost"] == 0
    assert throughput["delivered"] == throughput["expected_deliveries"] > 0
    assert throughput["duplicated"] == throughput["reordered"] == 0
    latencies = result["latency_ms"]
    assert CONNECTION_LATENCIES | {"publish_rtt", "fanout", "fanout_uncorrected", "fanout_last_receiver"} <= set(
        latencies
    )
    assert latencies["fanout"]["count"] == throughput["delivered"]
    assert 0 < latencies["fanout"]["p50"] < 1000
    assert latencies["fanout_uncorrected"]["p50"] <= latencies["fanout"]["p50"] + 0.01
    assert result["connections"]["peak"] == 44 and result["errors"] == {}
    assert result["loadgen"]["processes"][0]["role"] == "local"
    assert result["timeseries"] and {"t", "users", "fanout_p99_ms", "cpu_percent"} <= set(result["timeseries"][0])
    assert run.live and run.live[0]["t"] == 0
    assert "WS       fanout" in run.output  # aggregated into Locust's own stats


def test_publish_across_processes_merges_into_one_result(server: RunningServer) -> None:
    run = run_scenario(
        "publish", server.url, users=22, seconds=4, processes=2,
        args=("--channels", "2", "--subscribers-per-channel", "10", "--publishers", "2"),
    )  # fmt: skip
    result = run.result
    roles = sorted(process["role"] for process in result["loadgen"]["processes"])
    assert roles == ["master", "worker", "worker"]
    assert result["throughput"]["lost"] == 0
    assert result["throughput"]["delivered"] == result["throughput"]["expected_deliveries"] > 0
    assert result["latency_ms"]["fanout"]["count"] == result["throughput"]["delivered"]
    assert result["connections"]["opened"] == 22
    assert result["clock"]["sync"] == "none"  # auto: every worker on this host
    assert len(result["clock"]["processes"]) == 2  # each worker estimated its offset to the server


def test_subscribe_storm_measures_connection_latencies(server: RunningServer) -> None:
    run = run_scenario(
        "subscribe", server.url, users=40, seconds=3,
        args=("--channels", "5", "--channels-per-user", "2", "--ws-debug-users", "1"),
    )  # fmt: skip
    result = run.result
    assert set(result["latency_ms"]) >= CONNECTION_LATENCIES
    assert result["latency_ms"]["subscribe"]["count"] == 80
    assert result["connections"]["peak"] == 40
    assert result["errors"] == {}
    # the first user's frames are logged, nobody else's
    sent = [line for line in run.output.splitlines() if "WebSocket SEND" in line]
    assert len(sent) == 2 and all("WebSocket SEND u0-h0:" in line for line in sent)
    assert any("WebSocket RECEIVE u0-h0:" in line and "SUBSCRIBED" in line for line in run.output.splitlines())


def test_subscribe_counts_failures_by_reason(server: RunningServer) -> None:
    result = run_scenario("subscribe", server.url, users=3, seconds=2, args=("--password", "wrong")).result
    assert set(result["errors"]) == {"auth_401"}
    assert result["connections"]["peak"] == 0


def test_infinite_scroll_pages_are_exact(server: RunningServer) -> None:
    result = run_scenario(
        "infinite_scroll", server.url, users=4, seconds=3,
        args=("--history-depth", "120", "--think-ms", "5", "--pages-per-scroll", "10"),
    ).result  # fmt: skip
    history = result["history"]
    assert history["pages"] > 10
    assert history["contiguous"] and history["duplicates"] == history["gaps"] == 0
    assert result["latency_ms"]["history_page"]["count"] == history["pages"]


def test_chat_mix(server: RunningServer) -> None:
    result = run_scenario(
        "chat", server.url, users=12, seconds=4,
        args=("--channels", "3", "--think-min", "0.05", "--think-max", "0.15", "--mention-percent", "50"),
    ).result  # fmt: skip
    throughput = result["throughput"]
    assert throughput["published"] > 0 and throughput["lost"] == 0
    assert throughput["delivered"] == throughput["expected_deliveries"]
    assert result["received"].get("READ_RECEIPT", 0) > 0
    assert result["received"].get("USER_STATUS", 0) > 0


def test_chat_scroll_pages_back_through_what_was_written(server: RunningServer) -> None:
    """Each scroll loads the page before the oldest one loaded (newest first): pages are full, not
    empty pages before message 1 while a channel is young."""
    result = run_scenario(
        "chat", server.url, users=12, seconds=4,
        args=("--channels", "2", "--channel-prefix", "scroll-", "--think-min", "0.05", "--think-max", "0.15",
              "--weight-publish", "1", "--weight-scroll", "3", "--weight-read", "0", "--weight-presence", "0",
              "--weight-idle", "0"),
    ).result  # fmt: skip
    history = result["history"]
    assert history["pages"] > 20
    assert history["messages"] >= 8 * history["pages"], history
    assert history["contiguous"] and history["gaps"] == 0 and history["duplicates"] == 0


def test_reconnect_storm_drop_everyone_comes_back_on_schedule(server: RunningServer) -> None:
    result = run_scenario(
        "reconnect_storm", server.url, users=22, seconds=5,
        args=("--channels", "2", "--subscribers-per-channel", "10", "--publishers", "2", "--rate", "20",
              "--storm-at", "1.5"),
    ).result  # fmt: skip
    storm = result["storm"]
    assert storm["users"] == 22 and storm["gave_up"] == 0
    # no jitter: the seed's first retry comes 1 s after the drop, for everyone at once
    assert 1.0 <= storm["back_50_s"] <= storm["back_100_s"] < 1.5
    assert storm["attempts_per_user"]["max"] == 1
    assert storm["peak_attempts_per_s"] >= 22
    assert result["latency_ms"]["reconnect"]["count"] == 22
    assert result["throughput"]["lost"] == 0
    assert result["throughput"]["delivered"] == result["throughput"]["expected_deliveries"]


@pytest.mark.parametrize("trust", ["ca-file", "insecure"])
def test_publish_over_tls(tmp_path: Path, trust: str) -> None:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    authority.cert_pem.write_to_path(str(ca_path))
    args = ["--channels", "1", "--subscribers-per-channel", "4", "--publishers", "1"]
    env = {"SSL_CERT_FILE": str(ca_path)} if trust == "ca-file" else {}
    if trust == "insecure":
        args += ["--tls-insecure", "on"]
    with start_server("default", f"tls_cert={cert_path}", f"tls_key={key_path}") as tls_server:
        assert tls_server.url.startswith("https://")
        result = run_scenario("publish", tls_server.url, users=5, seconds=3, args=tuple(args), env=env).result
    throughput = result["throughput"]
    assert result["errors"] == {} and result["connections"]["opened"] == 5
    assert throughput["lost"] == 0 and throughput["delivered"] == throughput["expected_deliveries"] > 0


def test_untrusted_certificate_is_a_tls_error(tmp_path: Path) -> None:
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    with start_server("default", f"tls_cert={cert_path}", f"tls_key={key_path}") as tls_server:
        args = ("--auth", "secret", "--jwt-secret", "s")
        result = run_scenario("subscribe", tls_server.url, users=2, seconds=2, args=args).result
    assert set(result["errors"]) == {"tls"} and result["connections"]["opened"] == 0


def test_master_and_two_workers_merge_into_one_result(server: RunningServer, tmp_path: Path) -> None:
    """The same through separate --master / --worker processes (as across machines)."""
    port = free_port()
    locustfile = str(REPO / "scenarios" / "publish.py")
    worker_command = [sys.executable, "-m", "locust", "-f", locustfile, "--worker", "--master-host", "127.0.0.1"]
    worker_command += ["--master-port", str(port)]
    workers = [
        subprocess.Popen(worker_command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        run = run_scenario(
            "publish", server.url, users=22, seconds=4,
            args=("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                  "--expect-workers", "2", "--channels", "2", "--subscribers-per-channel", "10", "--publishers", "2"),
        )  # fmt: skip
    finally:
        for worker in workers:
            try:
                worker.wait(3 * TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(TIMEOUT)
    result = run.result
    assert sorted(p["role"] for p in result["loadgen"]["processes"]) == ["master", "worker", "worker"]
    throughput = result["throughput"]
    assert throughput["lost"] == 0 and throughput["delivered"] == throughput["expected_deliveries"] > 0
    assert result["connections"]["opened"] == 22


def test_reconnect_storm_with_full_jitter_spreads_the_herd(server: RunningServer) -> None:
    result = run_scenario(
        "reconnect_storm", server.url, users=22, seconds=4,
        args=("--channels", "2", "--subscribers-per-channel", "10", "--publishers", "2", "--storm-at", "1.5",
              "--jitter", "full"),
    ).result  # fmt: skip
    storm = result["storm"]
    # full jitter: the first retry waits uniformly between 0 and 1 s instead of exactly 1 s
    assert storm["users"] == 22 and storm["gave_up"] == 0
    assert storm["back_50_s"] < 0.9 and storm["back_100_s"] < 1.3
    assert storm["recovery_curve"][1][0] < storm["back_100_s"]
    assert result["throughput"]["lost"] == 0

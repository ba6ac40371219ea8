"""Distributed load: ``bench run --expect-workers N`` and ``bench worker`` processes, here and in
network namespaces of their own (as on other machines)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from locust.runners import WorkerNode, WorkerNodes

from bench.core.exceptions import UsageError
from bench.harness.locust import AuthSpec, Endpoint, LoadSpec, free_port, locust_command, parse_endpoint
from bench.harness.requests import RunOptions, load_spec
from bench.loadgen.runtime import GreetedWorkers
from tests.utils import TIMEOUT, TINY_PUBLISH, bench, read_result, run_dirs
from tests.utils.distributed import run_distributed
from tests.utils.netns import namespaces, netns_unavailable

# TINY_PUBLISH: 1 publisher and 4 subscribers, spread over the 2 workers, so integrity is only right if
# the master merges what the publisher sent on one worker with what receivers got on the other.
SUBSCRIBERS = 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.5:6000", Endpoint("10.0.0.5", 6000)), ("master", Endpoint("master", 5557)),
     ("[::1]:6000", Endpoint("::1", 6000)), ("[fd00::1]", Endpoint("fd00::1", 5557))],
)  # fmt: skip
def test_parse_endpoint(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected
    assert parse_endpoint(str(expected)) == expected


@pytest.mark.parametrize("text", ["", ":5557", "host:", "host:x", "host:70000", "[::1]x"])
def test_parse_endpoint_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_endpoint(text)


def test_master_command_and_checks() -> None:
    spec = load_spec(RunOptions(workers=3, master_bind="10.1.2.3:6000", worker_timeout_s=9), "publish")
    assert (spec.workers, spec.master_bind, spec.worker_timeout_s) == (3, Endpoint("10.1.2.3", 6000), 9)
    cmd = " ".join(locust_command(spec, AuthSpec(), "http://x:1"))
    assert "--master --master-bind-host 10.1.2.3 --master-bind-port 6000 --expect-workers 3" in cmd
    assert "--expect-workers-max-wait 9" in cmd
    assert spec.worker_hint() == "bench worker --master 10.1.2.3:6000 publish"
    assert spec.describe()["workers"] == 3
    assert "workers" not in LoadSpec("publish", 5, 5, 3).describe()
    with pytest.raises(UsageError, match="--processes"):
        load_spec(RunOptions(workers=2, processes=2), "publish")
    with pytest.raises(UsageError, match="--master-bind needs"):
        load_spec(RunOptions(master_bind="127.0.0.1:6000"), "publish")


def _run_args(out: Path, host: str, master: str, workers: int, *extra: str) -> list[str]:
    return ["run", "publish", "-t", "3", *TINY_PUBLISH, "--host", host, "--expect-workers", str(workers),
            "--master-bind", master, "--out", str(out), "--quiet", *extra]  # fmt: skip


def _assert_merged(result: dict[str, Any], worker_hosts: set[str]) -> None:
    assert result["status"] == "ok", result["failure"]
    processes = result["loadgen"]["processes"]
    workers = [p for p in processes if p["role"] == "worker"]
    assert {p["host"] for p in workers} == worker_hosts and len(workers) == 2
    assert [p["role"] for p in processes].count("master") == 1
    thr = result["throughput"]
    assert thr["published"] > 0 and thr["lost"] == thr["duplicated"] == 0
    assert thr["delivered"] == thr["expected_deliveries"] >= SUBSCRIBERS * (thr["published"] - 2)
    assert result["connections"]["opened"] == 5
    assert result["load"]["workers"] == 2


def test_two_local_workers_make_one_merged_result(tmp_path: Path) -> None:
    master = f"127.0.0.1:{free_port()}"
    run, workers = run_distributed(_run_args(tmp_path, "127.0.0.1", master, 2), [None, None], master=master)
    assert run.returncode == 0, run.stderr
    assert [w.returncode for w in workers] == [0, 0], [w.stdout + w.stderr for w in workers]
    assert all("stopped the run" in w.stdout for w in workers)
    [run_dir] = run_dirs(tmp_path)
    result = read_result(run_dir)
    _assert_merged(result, {socket.gethostname()})
    assert result["clock"]["sync"] == "none"  # one host: one clock, nothing to correct
    assert (run_dir / "report.html").is_file()


def test_too_few_workers_fail_the_run_with_a_partial_result(tmp_path: Path) -> None:
    master = f"127.0.0.1:{free_port()}"
    run, [worker] = run_distributed(
        _run_args(tmp_path, "127.0.0.1", master, 2, "--worker-timeout", str(TIMEOUT)), [None], master=master
    )
    assert run.returncode == 4, run.stderr
    assert "only 1 of 2 workers connected within" in run.stderr
    assert f"bench worker --master {master} publish" in run.stderr
    result = read_result(run_dirs(tmp_path)[0])
    assert result["status"] == "failed" and result["failure_kind"] == "workers_missing"
    assert worker.returncode == 0  # the master sent it home


def test_a_worker_for_another_scenario_is_sent_home_and_named(tmp_path: Path) -> None:
    """A worker started for the wrong scenario exits 2 saying which one to start; the master keeps waiting
    for a right one and, when none comes, names the refusal in its failure."""
    master = f"127.0.0.1:{free_port()}"
    run, [wrong] = run_distributed(
        _run_args(tmp_path, "127.0.0.1", master, 1, "--worker-timeout", str(2 * TIMEOUT)),
        [None],
        master=master,
        scenarios=["subscribe"],
    )
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "was started for scenario 'subscribe' but this run is 'publish'" in wrong.stderr
    assert f"bench worker --master {master} publish" in wrong.stderr
    assert run.returncode == 4, run.stderr
    assert "only 0 of 1 workers connected" in run.stderr and "for scenario 'subscribe'" in run.stderr
    assert read_result(run_dirs(tmp_path)[0])["failure_kind"] == "workers_missing"


def test_a_worker_is_ready_for_the_master_only_once_it_said_its_scenario() -> None:
    """Locust counts a worker ready from its client_ready on, before its hello: a headless master with
    --expect-workers 1 could start on a worker it was about to refuse, and end "ok" with no load (seen
    in CI). The master's GreetedWorkers counts a worker only once its hello named this scenario."""
    nodes = WorkerNodes()
    nodes["early"] = WorkerNode("early")  # connected before the runtime took the master's workers over
    clients = GreetedWorkers(nodes)
    clients["late"] = WorkerNode("late")
    assert clients.ready == [] and len(clients) == 2
    clients.greeted.add("late")
    assert [node.id for node in clients.ready] == ["late"]


def test_worker_without_a_master_exits_3() -> None:
    proc = bench("worker", "--master", f"127.0.0.1:{free_port()}", "--timeout", "1", timeout=6 * TIMEOUT)
    assert proc.returncode == 3, proc.stderr
    assert "cannot reach the Locust master at 127.0.0.1:" in proc.stderr and "within 1 s" in proc.stderr


def test_workers_in_network_namespaces_of_their_own(tmp_path: Path) -> None:
    """Workers on "other machines": own network stack and hostname; the server and the master listen
    on the root side of the veth pairs. Two hosts: the clock offsets to the server are applied."""
    if reason := netns_unavailable():
        pytest.skip(reason)
    with namespaces(2) as spaces:
        addr = spaces[0].root_addr
        master = f"{addr}:{free_port()}"
        run, workers = run_distributed(
            _run_args(tmp_path, addr, master, 2), [space.command for space in spaces], master=master
        )
    assert run.returncode == 0, run.stderr
    assert [w.returncode for w in workers] == [0, 0], [w.stdout + w.stderr for w in workers]
    result = read_result(run_dirs(tmp_path)[0])
    _assert_merged(result, {space.hostname for space in spaces})
    assert result["target"]["url"].startswith(f"http://{addr}:")
    clock = result["clock"]
    assert clock["sync"] == "server"  # clock-sync auto: workers on several hosts
    assert {p["host"] for p in clock["processes"]} == {space.hostname for space in spaces}

"""Cluster mode (docs/CLUSTER.md) against real redis-servers: config, the one banner, history exact across
workers, graceful shutdown, a worker killed mid-run (lost == 0) and Redis restarted mid-run (no silent loss).
The protocol paths themselves run on a 2-worker cluster in test_protocol_paths.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from bench.core import protocol
from bench.core.exceptions import ConfigError
from server_under_test.config import load_config
from server_under_test.redis_server import free_port, ping
from tests.utils import (
    TIMEOUT,
    RunningServer,
    fetch_token,
    http_get,
    http_json,
    needs_redis,
    run_scenario,
    server_command,
    start_server,
)
from tests.utils.chat_client import chat_client, metric, worker_of

pytestmark = needs_redis


class RedisProcess:
    """A redis-server of the test's own on 127.0.0.1 (no persistence), to stop and start again on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="test-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--dir", self._dir.name]
        self._proc = proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 2 * TIMEOUT
        while not ping("127.0.0.1", self.port):
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.02)

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


@contextlib.contextmanager
def redis_process() -> Iterator[RedisProcess]:
    redis = RedisProcess()
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()
        redis._dir.cleanup()


def health_of_each_worker(server: RunningServer, workers: int = 2) -> dict[int, tuple[int, dict[str, Any]]]:
    """/healthz until every worker answered once (each request is a new connection: SO_REUSEPORT spreads
    them); worker id -> (status, body)."""
    seen: dict[int, tuple[int, dict[str, Any]]] = {}
    for _ in range(60):
        status, body = http_json(f"{server.url}/healthz")
        seen[body["worker"]] = (status, body)
        if len(seen) == workers:
            break
    return seen


def metrics_of_each_worker(server: RunningServer, name: str, workers: int = 2) -> dict[int, float]:
    """One metric of each worker (as ``health_of_each_worker``): worker id -> value."""
    seen: dict[int, float] = {}
    for _ in range(60):
        text = http_get(f"{server.url}/metrics")[1].decode()
        values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line[:1] not in ("#", "")}
        seen[int(values["chat_worker"])] = values[name]
        if len(seen) == workers:
            break
    return seen


def wait_until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_config_validation_names_the_key() -> None:
    for item, key in (
        ("workers=-1", "workers"),
        ("broker=kafka", "broker"),
        ("redis_url=http://x", "redis_url"),
    ):
        with pytest.raises(ConfigError) as raised:
            load_config("cluster", [item])
        assert raised.value.key == key
    with pytest.raises(ConfigError) as raised:
        load_config("default", ["workers=2"])
    assert raised.value.key == "workers" and "broker" in str(raised.value)
    cluster = load_config("cluster")
    assert (cluster.workers, cluster.broker, cluster.redis_url) == (0, "redis", "auto")


def test_without_redis_server_on_path_it_stops_with_the_package_name() -> None:
    argv = server_command("cluster", ["workers=1"])
    env = {**os.environ, "PATH": "/nonexistent"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10 * TIMEOUT)
    assert done.returncode == 2
    assert "apt-get install redis-server" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_one_banner_each_worker_answers_and_sigterm_closes_every_client_1012() -> None:
    with start_server("cluster", "workers=2", "shutdown_timeout_s=3") as server:
        assert server.workers == 2
        assert server.log_text().count("listening on http://") == 1
        health = health_of_each_worker(server)
        assert sorted(health) == [0, 1] and all(status == 200 for status, _ in health.values())
        assert "chat_broker_up 1" in http_get(f"{server.url}/metrics")[1].decode()

        async def scenario() -> None:
            async with chat_client(server, "a") as first, chat_client(server, "b") as second:
                assert {worker_of(first.ws), worker_of(second.ws)} == {0, 1}
                server.send_signal(signal.SIGTERM)
                for client in (first, second):
                    notice = await client.expect(protocol.NOTIFICATION)
                    assert notice["kind"] == "shutdown"
                    with pytest.raises(ConnectionClosed) as closed:
                        while True:
                            await client.recv()
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == protocol.CLOSE_RESTART

        asyncio.run(scenario())
        assert server.wait(4 * TIMEOUT) == 0
        assert "Traceback" not in server.log_text()


def test_history_paging_is_exact_across_workers() -> None:
    count = 41
    with start_server("cluster", "workers=2") as server:

        async def publish() -> None:
            async with chat_client(server, "p0") as first, chat_client(server, "p1") as second:
                await first.subscribe("exact")
                await second.subscribe("exact")
                for n in range(count):
                    await (first if n % 2 else second).publish("exact", f"m{n}")
                ids = [event["message"]["id"] for event in await chat_messages_of(first, count)]
                assert ids == list(range(1, count + 1))  # every worker fans out in id order

        asyncio.run(publish())
        token = fetch_token(server.url, "reader")
        auth = {"Authorization": f"Bearer {token}"}

        def page(query: str) -> dict[str, Any]:
            status, body = http_get(f"{server.url}/channels/exact/messages?{query}", headers=auth)
            assert status == 200, body
            result: dict[str, Any] = json.loads(body)
            return result

        for limit in (1, 7, 20, count, count + 5):
            got = page(f"limit={limit}")
            ids = [m["id"] for m in got["messages"]]
            while got["hasMore"]:
                got = page(f"before={ids[0]}&limit={limit}")
                ids = [m["id"] for m in got["messages"]] + ids
            assert ids == list(range(1, count + 1)), limit
            forward: list[int] = []
            while True:
                got = page(f"after={forward[-1] if forward else 0}&limit={limit}")
                forward += [m["id"] for m in got["messages"]]
                if not got["hasMore"]:
                    break
            assert forward == list(range(1, count + 1)), limit


async def chat_messages_of(client: Any, count: int) -> list[dict[str, Any]]:
    return [await client.expect(protocol.CHAT_MESSAGE) for _ in range(count)]


def test_a_killed_worker_is_restarted_and_its_clients_catch_up_with_nothing_lost() -> None:
    """The worker with a publisher is frozen (so publishes wait unread in its sockets) and then killed.
    Its clients reconnect to a worker alive and catch up: lost 0. The publishes it never read are not in
    the history: they are counted as not accepted, never as lost, and every stored message was
    acknowledged to its publisher (published = acknowledged + not accepted)."""
    with start_server("cluster", "workers=2") as server:
        outcome: dict[str, Any] = {}
        args = ("--channels", "1", "--subscribers-per-channel", "8", "--publishers", "2", "--rate", "20",
                "--storm-at", "100", "-r", "50")  # fmt: skip

        def drive() -> None:
            outcome["run"] = run_scenario("reconnect_storm", server.url, users=10, seconds=9, args=args)

        load = threading.Thread(target=drive)
        load.start()
        time.sleep(3.5)  # connected and publishing on both workers; now a worker with a publisher dies
        taken = metrics_of_each_worker(server, "chat_messages_in_total")
        victim_id = max(taken, key=lambda worker: taken[worker])
        victim = health_of_each_worker(server)[victim_id][1]["pid"]
        os.kill(victim, signal.SIGSTOP)
        time.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        load.join(60)

        def replaced() -> bool:
            return health_of_each_worker(server).get(victim_id, (0, {}))[1].get("pid") not in (None, victim)

        assert wait_until(replaced, 5)
        assert f"restarting worker {victim_id}" in server.log_text()
        channel = f"{outcome['run'].result['params']['channel-prefix']}0"
        bearer = {"Authorization": f"Bearer {fetch_token(server.url, 'reader')}"}
        stored = http_json(f"{server.url}/channels/{channel}/messages?limit=1", bearer)[1]["messages"][-1]["id"]
    throughput = outcome["run"].result["throughput"]
    assert throughput["lost"] == 0, (throughput, outcome["run"].result["errors"])
    assert throughput["duplicated"] == 0 and throughput["delivered"] >= throughput["expected_deliveries"] > 0
    assert throughput["not_accepted"] >= 1 and throughput["unacked"] == 0, throughput
    assert throughput["published"] == stored + throughput["not_accepted"], (throughput, stored)


def test_redis_outage_is_never_silent() -> None:
    """Redis killed mid-run: publishes get an ERROR and are counted, /healthz is 503 degraded on every worker,
    /metrics says so; Redis back on the same port (its data gone): the workers reconnect, resubscribe, and
    ids go on from where they were."""
    with redis_process() as redis, start_server("cluster", "workers=2", f"redis_url={redis.url}") as server:

        def every_worker(status: int) -> bool:
            return all(code == status for code, _ in health_of_each_worker(server).values())

        async def scenario() -> None:
            async with chat_client(server, "o0") as first, chat_client(server, "o1") as second:
                await first.subscribe("outage")
                await second.subscribe("outage")
                await first.publish("outage", "before")
                assert (await second.expect(protocol.CHAT_MESSAGE))["message"]["id"] == 1
                redis.kill()
                assert await asyncio.to_thread(wait_until, lambda: every_worker(503), 4 * TIMEOUT)
                health = health_of_each_worker(server)
                assert all(body["status"] == "degraded" and "Redis" in body["reason"] for _, body in health.values())
                for client in (first, second):
                    await client.publish("outage", "during")
                    error = await client.expect(protocol.ERROR)
                    assert error["code"] == protocol.INTERNAL and "broker" in error["reason"]
                metrics = http_get(f"{server.url}/metrics")[1].decode()
                assert "chat_broker_up 0" in metrics
                assert max(metric(server, "chat_broker_failures_total") for _ in range(6)) >= 1
                redis.start()
                assert await asyncio.to_thread(wait_until, lambda: every_worker(200), 6 * TIMEOUT)
                await second.publish("outage", "after")
                for client in (first, second):
                    event = await client.expect(protocol.CHAT_MESSAGE, timeout=2 * TIMEOUT)
                    assert event["message"]["content"] == "after" and event["message"]["id"] == 2

        asyncio.run(scenario())

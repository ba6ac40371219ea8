"""The socketio, stomp and mqtt wires against servers no one here wrote: the socket.io library, RabbitMQ.

Each protocol runs ``publish`` (nothing lost, fan-out latency measured), ``reconnect_storm`` in drop mode
(everyone back) and the ``subscribe`` storm, through the tool's own Locust launcher. The keepalives are
made short (Engine.IO pings every second, STOMP heart-beats and MQTT keep alive of 1-2 s) so that a wire
that failed to answer or send them would lose its connections within the run.

These servers give no message ids: integrity counts per publisher sequence, and the windows are the
receivers' presence (``lost == 0`` with ``expected_deliveries`` from what was sent while they listened).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.utils import bench, read_result, run_dirs, run_scenario
from tests.utils.brokers import RabbitMQ


@dataclass(frozen=True)
class Target:
    protocol: str
    url: str
    args: tuple[str, ...]


def rabbit_target(rabbitmq: RabbitMQ, protocol: str, *settings: str) -> Target:
    url = rabbitmq.stomp_url if protocol == "stomp" else rabbitmq.mqtt_url
    login = ("--user", rabbitmq.user, "--password", rabbitmq.password)
    return Target(protocol, url, ("--protocol", protocol, "--ws-path", "/ws", *login, "--wire-set", ",".join(settings)))


@pytest.fixture(params=["socketio", "stomp", "mqtt", "mqtt-qos0"])
def target(request: pytest.FixtureRequest) -> Target:
    name = request.param
    if name == "socketio":
        url = request.getfixturevalue("socketio_chat")
        return Target(name, url, ("--protocol", "socketio", "--ws-path", "/socket.io/"))
    rabbitmq = request.getfixturevalue("rabbitmq")
    if name == "stomp":
        return rabbit_target(rabbitmq, "stomp", "heartbeat_ms=1000")
    if name == "mqtt":
        return rabbit_target(rabbitmq, "mqtt", "keepalive_s=2")
    return rabbit_target(rabbitmq, "mqtt", "keepalive_s=2", "qos=0")


FANOUT = ("--auth", "none", "--channels", "2", "--subscribers-per-channel", "5", "--publishers", "2", "--rate", "20")


def test_publish_loses_nothing_and_measures_fanout(target: Target) -> None:
    run = run_scenario("publish", target.url, users=12, seconds=6, args=(*FANOUT, "--warmup", "2", *target.args))
    result, throughput = run.result, run.result["throughput"]
    assert result["errors"] == {}, run.output[-3000:]
    assert throughput["published"] >= 2 * 20 * 2
    assert throughput["lost"] == 0 and throughput["duplicated"] == throughput["reordered"] == 0
    assert throughput["delivered"] == throughput["expected_deliveries"] == 5 * throughput["published"]
    latency = result["latency_ms"]
    assert latency["fanout"]["count"] == throughput["delivered"]
    assert 0 < latency["fanout"]["p50"] < 500 and latency["publish_rtt"]["count"] == throughput["published"]
    assert latency["fanout_last_receiver"]["count"] == throughput["published"]


def test_reconnect_storm_drop_everyone_comes_back(target: Target) -> None:
    run = run_scenario(
        "reconnect_storm", target.url, users=12, seconds=6,
        args=(*FANOUT, "--storm-at", "2", "--storm-mode", "drop", *target.args),
    )  # fmt: skip
    result = run.result
    storm = result["storm"]
    assert storm["users"] == 12 and storm["gave_up"] == 0, run.output[-3000:]
    assert 1.0 <= storm["back_50_s"] <= storm["back_100_s"] < 2.5  # the seed's first retry, 1 s after the drop
    assert result["latency_ms"]["reconnect"]["count"] == 12
    assert set(result["errors"]) == {"reset"}  # the drops themselves, nothing else
    throughput = result["throughput"]
    assert throughput["recovered"] == 0  # no history to catch up from: what was sent while away is missed
    assert throughput["delivered"] > 0 and throughput["duplicated"] == 0


def test_subscribe_storm(target: Target) -> None:
    run = run_scenario(
        "subscribe", target.url, users=30, seconds=3,
        args=("--auth", "none", "--channels", "5", "--channels-per-user", "2", *target.args),
    )  # fmt: skip
    result = run.result
    assert result["errors"] == {}, run.output[-3000:]
    assert result["latency_ms"]["subscribe"]["count"] == 60
    assert result["latency_ms"]["handshake"]["count"] == 30
    assert result["connections"]["peak"] == 30


@pytest.mark.parametrize("protocol", ["stomp", "mqtt"])
def test_bench_run_against_a_broker_with_no_http_api(rabbitmq: RabbitMQ, protocol: str, tmp_path: Path) -> None:
    """``bench run publish --target ws://HOST:PORT/ws --protocol P --user --password``: the README's form;
    the default ``--auth login`` is the protocol's CONNECT (no HTTP token request)."""
    url = rabbitmq.stomp_url if protocol == "stomp" else rabbitmq.mqtt_url
    proc = bench("run", "publish", "--target", url, "--protocol", protocol, "--user", rabbitmq.user,
                 "--password", rabbitmq.password, "-t", "6", "--param", "channels=2",
                 "--param", "subscribers_per_channel=4", "--param", "publishers=2", "--param", "rate=10",
                 "--param", "warmup=2", "--out", str(tmp_path), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    [run_dir] = run_dirs(tmp_path)
    result = read_result(run_dir)
    assert result["protocol"] == protocol or result["target"].get("protocol") == protocol
    throughput = result["throughput"]
    assert throughput["lost"] == 0 and throughput["delivered"] == throughput["expected_deliveries"] > 0
    assert result["latency_ms"]["fanout"]["count"] == throughput["delivered"]

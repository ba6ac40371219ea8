"""--protocol: the seed dialect against the bundled server, dialect files, capabilities, ws:// targets,
and integrity live in Locust's web UI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.core.dialect import parse
from bench.core.exceptions import ConfigError
from bench.harness.locust import SCENARIOS_DIR, free_port
from bench.loadgen.wire import DIALECTS_DIR, DialectWire, wire_for
from tests.utils import TIMEOUT, TINY_PUBLISH, RunningServer, bench, http_get, read_result, run_dirs, run_scenario

SEED_TOML = DIALECTS_DIR / "seed.toml"


def test_the_seed_dialect_speaks_the_seed_documents_client() -> None:
    wire = wire_for("seed")
    assert isinstance(wire, DialectWire) and wire.name == "seed"
    publish = json.loads(wire.publish("c1", "hello", 1700, "u.1/c1:3:10:11", "TEXT"))
    assert publish == {"type": "PUBLISH", "channelId": "c1", "messageType": "TEXT",
                       "content": "u.1/c1:3:10:11 hello", "timestamp": 1700}  # fmt: skip
    assert json.loads(wire.subscribe("c1", 5)) == {"type": "SUBSCRIBE", "channelId": "c1", "timestamp": 5}
    assert wire.url("http://h:1", "/ws", "a b") == "ws://h:1/ws?token=a%20b"
    [event] = wire.decode(json.dumps({"type": "CHAT_MESSAGE", "channelId": "c1",
                                      "message": {"id": "x", "content": "u.1/c1:3:10:11 hello"}}).encode())  # fmt: skip
    assert event["message"]["clientMsgId"] == "u.1/c1:3:10:11" and event["message"]["content"] == "hello"
    [subscribed] = wire.decode(b'{"type": "SUBSCRIBED", "channelId": "c1", "lastMessageId": 7}')
    assert subscribed["lastMessageId"] is None  # the seed's client never reads it
    assert "history" in wire.capabilities and "catch_up" not in wire.capabilities


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[publish]\nchanel = "x"', "publish.chanel"),
        ('connect = { token = "header" }', "connect.token"),
        ('[chat_message]\ntag = ""', "chat_message.tag"),
        ('login = { method = "PUT" }', "login.method"),
        ("surprise = 1", "surprise"),
    ],
)
def test_a_bad_dialect_file_names_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse(text, source="my.toml")


def test_bench_run_with_the_seed_protocol_against_the_bundled_server(tmp_path: Path) -> None:
    proc = bench("run", "publish", "--protocol", "seed", "-t", "3", *TINY_PUBLISH, "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = read_result(run_dirs(tmp_path)[0])
    throughput = result["throughput"]
    assert result["protocol"] == "seed" and result["integrity"]["method"] == "send_times"
    assert (throughput["lost"], throughput["duplicated"]) == (0, 0)
    assert throughput["delivered"] == throughput["expected_deliveries"] > 0
    assert result["latency_ms"]["fanout"]["count"] == throughput["delivered"]
    assert "seed" in (run_dirs(tmp_path)[0] / "report.html").read_text()


def test_a_locust_run_with_a_dialect_file(server: RunningServer) -> None:
    run = run_scenario("publish", server.url, users=4, seconds=3, args=(
        "--protocol", str(SEED_TOML), "--channels", "1", "--subscribers-per-channel", "3", "--publishers", "1",
        "--rate", "20"))  # fmt: skip
    throughput = run.result["throughput"]
    assert (throughput["lost"], throughput["duplicated"]) == (0, 0), throughput["lossy_windows"]
    assert run.result["errors"] == {}  # batched frames too (the client offers batching to every server)
    assert throughput["delivered"] == throughput["expected_deliveries"] > 0


def test_a_scenario_the_protocol_cannot_serve_exits_2_saying_why(tmp_path: Path) -> None:
    proc = bench("run", "infinite_scroll", "--protocol", "seed", "-t", "2", "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "infinite_scroll needs catch_up, which protocol 'seed' does not offer" in proc.stderr + proc.stdout


def test_an_unknown_protocol_and_a_broken_dialect_file_are_usage_errors(tmp_path: Path) -> None:
    proc = bench("run", "publish", "--protocol", "nope", "-t", "2", "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 2 and "unknown protocol 'nope'" in proc.stderr + proc.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text('[publish]\nchanel = "x"\n')
    proc = bench("run", "publish", "--protocol", str(broken), "-t", "2", "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 2 and "publish.chanel: unknown key" in proc.stderr + proc.stdout


def test_integrity_shows_live_in_the_web_ui(server: RunningServer) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "locust", "-f", str(SCENARIOS_DIR / "publish.py"), "--host", server.url,
           "--web-port", str(port), "--web-host", "127.0.0.1", "-u", "4", "-r", "4", "--autostart",
           "--channels", "1", "--subscribers-per-channel", "3", "--publishers", "1", "--rate", "20",
           "--loglevel", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        counts: dict[str, int] = {}
        deadline = time.monotonic() + 6 * TIMEOUT
        while time.monotonic() < deadline and not counts.get("delivered"):
            time.sleep(0.5)
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/chatbench/integrity")
            except OSError:
                continue
            counts = json.loads(body) if status == 200 else {}
        assert counts.get("delivered", 0) > 0, counts
        assert {"lost", "duplicated", "reordered", "protocol"} <= set(counts)
        status, body = http_get(f"http://127.0.0.1:{port}/stats/requests")
        [tab] = json.loads(body)["extended_stats"]
        assert {row["name"] for row in tab["data"]} >= {"lost so far (missing now)", "duplicated", "reordered"}
        assert b"Integrity" in http_get(f"http://127.0.0.1:{port}/")[1]
    finally:
        proc.terminate()
        proc.wait(4 * TIMEOUT)


def test_the_guides_example_dialect_is_valid() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "BRING_YOUR_OWN.md").read_text()
    example = guide.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = parse(example, source="BRING_YOUR_OWN.md")
    assert spec.name == "acme" and spec.token_place == "first_message"
    assert json.loads(spec.opening("T")[0]) == {"op": "auth", "jwt": "T"}
    [event] = spec.decode(b'{"type": "said", "room": "r", "msgId": 9, "text": "a.1/r:1:2:3 hi"}')
    assert event["channelId"] == "r" and event["message"]["clientMsgId"] == "a.1/r:1:2:3"
    call = spec.login_call("bob", "pw")
    assert call is not None and json.loads(call.body or b"") == {"name": "bob", "pass": "pw"}

"""Every user error is one clear line on stderr and its documented exit code, before any load."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.cli.main import EXIT_TARGET, EXIT_USAGE, main
from tests.utils import RunningServer, static_site


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def not_a_chat_server() -> Iterator[str]:
    """A plain web server (python -m http.server): answers HTTP, upgrades nothing."""
    with static_site() as origin:
        yield origin


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return code, err


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["run", "pubish"], "unknown scenario 'pubish'; available: subscribe, publish"),
        (["run", "publish", "--server", "fastest"], "unknown preset 'fastest'; available:"),
        (["run", "publish", "--server", "/no/such.toml"], "does not exist"),
        (["run", "publish", "--set", "fanout=bogus"], "fanout: must be one of naive, broadcast, batched"),
        (["run", "publish", "--set", "no_such_key=1"], "no_such_key: unknown key"),
        (["run", "publish", "--set", "max_batch=many"], "max_batch: bad value 'many'"),
        (["run", "publish", "--set", "fanout"], "must look like key=value"),
        (["run", "publish", "--slo", "fanout.p99<<1"], "cannot parse SLO"),
        (["run", "publish", "--slo", "latency<1ms"], "unknown SLO metric 'latency'"),
        (["run", "publish", "--slo", "fanot.p99<50ms"], "unknown latency 'fanot'; did you mean fanout.p99?"),
        (["run", "publish", "--param", "rate"], "--param 'rate' must look like name=value"),
        (["run", "publish", "-u", "7"], "sizes its users from its parameters"),
        (["run", "publish", "--server", "default", "--target", "http://127.0.0.1:1"], "either --server"),
        (["run", "publish", "--target", "ftp://x"], "must look like http://HOST:PORT"),
        (["run", "publish", "--target", "http://127.0.0.1:1", "--set", "fanout=naive"], "--set applies"),
        (["compare", "publish", "--server", "nope"], "unknown preset 'nope'"),
        (["compare", "reports/no-such-run", "reports/other"], "no such run directory"),
        (["capacity", "publish", "--step-param", "bogus"], "--step-param bogus: give --start"),
        (["capacity", "publish", "--step-param", "users"], "publish sizes its users from its parameters"),
        (["run", "publish", "--server", "peer:nope"], "unknown peer server 'peer:nope'"),
        (["run", "reconnect_storm", "-t", "8"], "storm_at=10 s is not within the 8 s run"),
        (["run", "publish", "--param", "channels=0"], "scenario publish: needs channels >= 1, publishers >= 1"),
        (["run", "reconnect_storm", "--param", "publishers=0"], "given channels=4, publishers=0"),
        (["run", "reconnect_storm", "-t", "20", "--param", "storm_at=25"], "storm_at=25 s is not within the 20 s run"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], complaint: str) -> None:
    code, err = one_line_error(capsys, *args, "--out", str(tmp_path))
    assert code == EXIT_USAGE
    assert complaint in err
    assert not any(tmp_path.iterdir()), "a user error must leave no run behind"


def test_port_in_use(capsys: pytest.CaptureFixture[str], tmp_path: Path, busy_port: int) -> None:
    code, err = one_line_error(capsys, "run", "publish", "--port", str(busy_port), "--out", str(tmp_path))
    assert code == EXIT_TARGET
    assert f"port {busy_port} on 127.0.0.1 is already in use" in err
    assert not any(tmp_path.iterdir())


def test_unreachable_target(capsys: pytest.CaptureFixture[str], tmp_path: Path, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    code, err = one_line_error(capsys, "run", "publish", "--target", url, "--out", str(tmp_path))
    assert code == EXIT_TARGET
    assert f"{url}: connection refused" in err


def test_refused_login_on_target(capsys: pytest.CaptureFixture[str], tmp_path: Path, server: RunningServer) -> None:
    code, err = one_line_error(capsys, "run", "publish", "--target", server.url, "--password", "wrong",
                               "--out", str(tmp_path))  # fmt: skip
    assert code == EXIT_TARGET
    assert "HTTP 401" in err and "--password" in err


def test_secret_auth_needs_a_secret(capsys: pytest.CaptureFixture[str], tmp_path: Path, server: RunningServer) -> None:
    code, err = one_line_error(capsys, "run", "publish", "--target", server.url, "--auth", "secret",
                               "--out", str(tmp_path))  # fmt: skip
    assert code == EXIT_USAGE and "--auth secret needs --jwt-secret" in err


def test_unknown_scenario_parameter(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = one_line_error(capsys, "run", "publish", "-t", "1", "--param", "bogus=1", "--param", "channels=1",
                               "--param", "subscribers_per_channel=1", "--param", "publishers=1", "--quiet",
                               "--out", str(tmp_path))  # fmt: skip
    assert code == EXIT_USAGE
    assert "scenario publish has no option --bogus" in err and "--help" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("auth", [["--auth", "none"], ["--auth", "secret", "--jwt-secret", "s"]])
def test_target_that_is_no_chat_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, not_a_chat_server: str, auth: list[str]
) -> None:
    code, err = one_line_error(capsys, "run", "publish", "--target", not_a_chat_server, *auth, "--out", str(tmp_path))
    assert code == EXIT_TARGET
    assert "HTTP 404 to a WebSocket upgrade at /ws: not a chat server there" in err
    assert not any(tmp_path.iterdir()), "no run full of failed connections"


def test_wrong_ws_path_on_target(capsys: pytest.CaptureFixture[str], tmp_path: Path, server: RunningServer) -> None:
    code, err = one_line_error(capsys, "run", "subscribe", "--target", server.url, "--ws-path", "/nope",
                               "--out", str(tmp_path))  # fmt: skip
    assert code == EXIT_TARGET and "WebSocket upgrade at /nope" in err


@pytest.mark.parametrize(
    ("auth", "complaint"),
    [
        (["--auth", "none"], "/ws wants a token"),
        (["--auth", "secret", "--jwt-secret", "wrong"], "/ws refused the token"),
    ],
)
def test_websocket_refuses_the_probe_token(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: RunningServer, auth: list[str], complaint: str
) -> None:
    code, err = one_line_error(capsys, "run", "subscribe", "--target", server.url, *auth, "--out", str(tmp_path))
    assert code == EXIT_TARGET and "HTTP 401" in err and complaint in err


@pytest.mark.parametrize(
    ("param", "complaint"),
    [
        ("rate=abc", "scenario publish: --param rate: invalid float value: 'abc'"),
        ("publishers=1.5", "channels, subscribers_per_channel and publishers are whole numbers"),
    ],
)
def test_bad_scenario_parameter_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, param: str, complaint: str
) -> None:
    code, err = one_line_error(capsys, "run", "publish", "-t", "1", "--param", "channels=1",
                               "--param", "subscribers_per_channel=1", "--param", "publishers=1", "--param", param,
                               "--quiet", "--out", str(tmp_path))  # fmt: skip
    assert code == EXIT_USAGE
    assert complaint in err
    assert not any(tmp_path.iterdir()), "a user error must leave no run behind"


def test_a_plain_locustfile_is_named_as_such(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text("from locust import HttpUser, task\n\n\nclass U(HttpUser):\n    @task\n    def t(self) -> None:\n"
                     "        self.client.get('/healthz')\n")  # fmt: skip
    out = tmp_path / "out"
    code, err = one_line_error(capsys, "run", str(plain), "-u", "1", "-t", "1", "--quiet", "--out", str(out))
    assert code == EXIT_USAGE
    assert f"{plain} is not a chatbench locustfile" in err and "runtime.install" in err
    assert not out.exists() or not any(out.iterdir())


def test_an_unusable_out_directory_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = one_line_error(capsys, "run", "subscribe", "-u", "1", "-t", "1", "--out", str(blocker / "runs"))
    assert code == EXIT_USAGE and f"--out {blocker / 'runs'}: cannot create it" in err


def test_an_unwritable_report_path_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from bench.results import run as results
    from tests.utils.sample import sample_result

    results.write(sample_result(), tmp_path / "run")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = one_line_error(capsys, "report", str(tmp_path / "run"), "-o", str(blocker / "report.html"))
    assert code == EXIT_USAGE and str(blocker) in err

"""Config loading (presets, files, --set) and the command line's contract: banner, exit codes."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from bench.core.exceptions import ConfigError
from server_under_test.config import DEFAULT_PASSWORD, ServerConfig, list_presets, load_config
from tests.utils import REPO, TIMEOUT, server_command


def test_shipped_presets_load_and_differ() -> None:
    names = list_presets()
    assert {"naive", "default", "broadcast", "durable"} <= set(names)
    for name in names:
        assert load_config(name, []).preset == name
    naive, default = load_config("naive", []), load_config("default", [])
    assert (naive.fanout, naive.json, naive.loop) == ("naive", "json", "asyncio")
    assert (default.fanout, default.json, default.loop) == ("batched", "orjson", "uvloop")
    assert load_config("durable", []).history == "sqlite"
    assert load_config(None, []) == default
    assert default.password == DEFAULT_PASSWORD


def test_overrides_are_typed() -> None:
    config = load_config(
        "default",
        ["compression=true", "batch_window_ms=2.5", "max_batch=10", 'content_filter=["a", "b c"]', "tls_cert=none"],
    )
    assert config.compression is True
    assert config.batch_window_ms == 2.5
    assert config.max_batch == 10
    assert config.content_filter == ("a", "b c")
    assert config.tls_cert is None
    assert load_config("default", ["content_filter=x, y"]).content_filter == ("x", "y")
    assert load_config("default", ["compression=off"]).compression is False


def test_a_config_file_extends_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('extends = "naive"\nmax_batch = 7\nrate_limit_per_s = 0\n')
    config = load_config(str(path), ["max_batch=9"])
    assert config == ServerConfig(
        preset="mine", fanout="naive", json="json", loop="asyncio", max_batch=9, rate_limit_per_s=0.0
    )


@pytest.mark.parametrize(
    ("preset", "overrides", "key"),
    [
        ("nope", [], "preset"),
        ("default", ["fanout=telepathy"], "fanout"),
        ("default", ["no_such_key=1"], "no_such_key"),
        ("default", ["max_batch=lots"], "max_batch"),
        ("default", ["max_batch=0"], "max_batch"),
        ("default", ["compression=maybe"], "compression"),
        ("default", ["novalue"], "novalue"),
        ("default", ["tls_cert=/does/not/exist"], "tls_key"),
        ("default", ["tls_cert=/no/cert", "tls_key=/no/key"], "tls_cert"),
        ("/does/not/exist.toml", [], "config"),
    ],
)
def test_bad_configs_raise_config_error_naming_the_key(preset: str, overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(preset, overrides)
    assert error.value.key == key
    assert str(error.value).startswith(f"{key}: ")


def test_a_misspelt_key_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'fanout'"):
        load_config("default", ["fanot=batched"])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [*server_command(None, []), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=4 * TIMEOUT, cwd=REPO)


@pytest.mark.parametrize(
    "args",
    [
        ("--config", "nope"),
        ("--set", "fanout=telepathy"),
        ("--set", "history=sqlite", "--set", "history_path=/no/such/dir/h.db"),
    ],
)
def test_cli_bad_config_is_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")


def test_cli_port_in_use_is_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = server_command(None, [], port=port)
        result = subprocess.run(command, capture_output=True, text=True, timeout=4 * TIMEOUT, cwd=REPO)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot listen" in result.stderr

"""``bench --help`` and ``python -m bench --help`` both work and list every subcommand and exit code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils import REPO

SUBCOMMANDS = ("run", "compare", "capacity", "report", "serve")


def _commands() -> list[list[str]]:
    script = shutil.which("bench", path=str(Path(sys.executable).parent))
    return [[sys.executable, "-m", "bench"], *([[script]] if script else [])]


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(Path(c[0]).name for c in [c]))
def test_help_lists_subcommands_and_exit_codes(command: list[str]) -> None:
    proc = subprocess.run([*command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert f"\n    {name} " in proc.stdout, name
    assert "1  an --slo failed" in proc.stdout and "3  target or server error" in proc.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", name, "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: bench {name}")


def test_no_subcommand_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "COMMAND" in proc.stderr

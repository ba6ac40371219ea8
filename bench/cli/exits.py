"""The exit codes of ``bench`` (documented in its --help) and the console every command prints to."""

from __future__ import annotations

from typing import Any, Final

from rich.console import Console

from bench.harness import runner

EXIT_OK: Final = 0
EXIT_SLO_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_TARGET: Final = 3
EXIT_LOADGEN: Final = 4
EXIT_INTERRUPTED: Final = 130


def exit_code_of(result: dict[str, Any]) -> int:
    """The exit code a finished run deserves."""
    kind = result.get("failure_kind")
    if result.get("status") != "ok":
        return {runner.SERVER_DIED: EXIT_TARGET, runner.INTERRUPTED: EXIT_INTERRUPTED}.get(kind or "", EXIT_LOADGEN)
    return EXIT_SLO_FAILED if (result.get("slo") or {}).get("passed") is False else EXIT_OK


def console() -> Console:
    return Console(stderr=False, highlight=False)

"""``bench compare``'s runs: every config ``repeat`` times, interleaved, grouped by config."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from rich.console import Console

from bench.harness import runner
from bench.results import run as results
from bench.results.comparison import Group

DEFAULT_REPEAT: Final = 3
DEFAULT_SERVERS: Final = ("naive", "default")


def run_configs(
    requests: list[runner.RunRequest], repeat: int, out_dir: Path, console: Console
) -> tuple[list[Group], bool]:
    """Run every request ``repeat`` times, interleaved; the groups that ran, and whether Ctrl-C cut it short."""
    groups = [Group(req.name, [], []) for req in requests]
    interrupted = False
    try:
        for round_ in range(repeat):
            for request, group in zip(requests, groups, strict=True):
                request.out_dir = out_dir / results.safe_name(group.label)
                console.print(f"[bold]run {round_ + 1}/{repeat}[/] of {group.label}", highlight=False)
                result, run_dir = runner.execute(request, console)
                if result["status"] != "ok":
                    console.print(f"  [red]failed[/]: {result['failure']}", highlight=False)
                group.results.append(result)
                group.paths.append(run_dir / results.RESULT_FILE)
                if result.get("failure_kind") == runner.INTERRUPTED:  # Ctrl-C ended that run: end them all
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
    return [g for g in groups if g.results], interrupted

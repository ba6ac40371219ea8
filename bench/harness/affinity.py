"""CPU pinning (sched_setaffinity) for the server and the load generator, so that on a small machine
they do not take each other's cores and a measurement says whose limit it found.

``--server-cpus 0 --loadgen-cpus 1`` (lists and ranges: ``0,2``, ``0-3``). Child processes inherit the
set: Locust's ``--processes`` workers share the load generator's cores, a server's workers the server's.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from bench.core.exceptions import UsageError

CpuSet = tuple[int, ...]


def available() -> CpuSet:
    """The cores this process may run on."""
    return tuple(sorted(os.sched_getaffinity(0)))


def parse_cpus(text: str | None, option: str = "--cpus") -> CpuSet:
    """``"0"``, ``"0,2"``, ``"1-3"`` as a sorted tuple of cores this machine has; ``()`` for None or empty."""
    if not text:
        return ()
    cores: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise UsageError(f"{option} {text!r}: give cores as 0,2 or 0-3")
        low, high = int(first), int(last) if sep else int(first)
        if high < low:
            raise UsageError(f"{option} {text!r}: {part} is an empty range")
        cores.update(range(low, high + 1))
    missing = sorted(cores - set(available()))
    if missing:
        raise UsageError(f"{option} {text!r}: no core {missing[0]} here (available: {','.join(map(str, available()))})")
    return tuple(sorted(cores))


def pin(cpus: CpuSet) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpus`` before it runs, or None to leave it free."""
    if not cpus:
        return None
    chosen = set(cpus)
    return lambda: os.sched_setaffinity(0, chosen)


def default_split() -> tuple[CpuSet, CpuSet]:
    """The server on the first core, the load generator on the others; ``((), ())`` on one core."""
    cores = available()
    return (cores[:1], cores[1:]) if len(cores) >= 2 else ((), ())


def describe(cpus: CpuSet) -> str:
    return ",".join(map(str, cpus)) if cpus else "any"

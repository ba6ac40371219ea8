"""Network namespaces as stand-ins for other machines: one veth pair each to the root namespace.

    with namespaces(2) as spaces:          # or pytest.skip(netns_unavailable())
        spaces[0].root_addr                # 10.x.y.1, on the root side of the first pair
        subprocess.run(spaces[0].command(["python", "-m", "bench", "worker", ...]))

Each namespace gets a /30 of a 10.x test range made here (its own address ``.2``, the root side
``.1``) and a route to the other pairs' root-side addresses, so a process inside reaches anything
bound on any root-side address (traffic stays on interfaces made here). ``command`` also gives the
process a hostname of its own (a UTS namespace), so it looks like another host to Locust.
Everything is deleted on the way out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

_IP = "ip"


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    hostname: str
    root_addr: str  # the root namespace's end of the veth pair
    addr: str  # this namespace's end

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` inside this namespace, under the hostname ``hostname``."""
        script = 'hostname "$0" && exec "$@"'
        return [_IP, "netns", "exec", self.name, "unshare", "--uts", "sh", "-c", script, self.hostname, *argv]


def _ip(*args: str) -> None:
    subprocess.run([_IP, *args], check=True, capture_output=True, text=True, timeout=10)


def netns_unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip`` or ``unshare``, EPERM), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in (_IP, "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install -y iproute2 util-linux)"
    probe = f"cbprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"cannot create a network namespace: {exc.stderr.strip()}"
    finally:
        subprocess.run([_IP, "netns", "del", probe], capture_output=True, timeout=10)
    return None


@contextlib.contextmanager
def namespaces(count: int) -> Iterator[list[Namespace]]:
    """``count`` namespaces with veth pairs in 10.(200 + pid % 50).i.0/30; removed at exit."""
    tag = os.getpid() % 100000
    net = f"10.{200 + tag % 50}"
    spaces = [Namespace(f"cb{tag}n{i}", f"cbhost{i}", f"{net}.{i}.1", f"{net}.{i}.2") for i in range(count)]
    made: list[tuple[str, ...]] = []  # the `ip` commands that undo what was made, in order
    try:
        for i, space in enumerate(spaces):
            outer, inner = f"cb{tag}r{i}", f"cb{tag}i{i}"
            _ip("netns", "add", space.name)
            made.append(("netns", "del", space.name))
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            made.append(("link", "del", outer))
            _ip("link", "set", inner, "netns", space.name)
            _ip("addr", "add", f"{space.root_addr}/30", "dev", outer)
            _ip("link", "set", outer, "up")
            inside = ("netns", "exec", space.name, _IP)
            _ip(*inside, "addr", "add", f"{space.addr}/30", "dev", inner)
            _ip(*inside, "link", "set", inner, "up")
            _ip(*inside, "link", "set", "lo", "up")
            _ip(*inside, "route", "add", f"{net}.0.0/16", "via", space.root_addr)
        yield spaces
    finally:
        for undo in reversed(made):  # a pair already gone with its namespace makes `link del` fail: fine
            subprocess.run([_IP, *undo], capture_output=True, timeout=10)

"""Peer servers: the same chat protocol on other stacks, to benchmark the bundled server against.

Each peer is a small adapter of our own, written the idiomatic fast way on its stack:

    node-ws   Node.js + ws (npm), JSON.stringify once, ws.send per subscriber   node_ws/server.js
    picows    picows + uvloop + orjson, transport.send per subscriber           picows_server.py

``bench compare`` / ``bench capacity`` name them as ``--server peer:NAME``; :meth:`Peer.command` gives
the command line that starts one (it prints ``chat server listening on http://HOST:PORT (peer NAME)``
like the bundled server) after :meth:`Peer.check_installed` has said what is missing, if anything.
Servers only: this package imports nothing of ``bench`` but ``bench.core``; the tool starts them.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.core.exceptions import TargetError, UsageError
from server_under_test.peers.settings import PeerSettings

PEER_PREFIX: Final = "peer:"
NODE_WS_DIR: Final = Path(__file__).with_name("node_ws")


@dataclass(frozen=True, slots=True)
class Peer:
    """How to start one peer server and how to tell whether it can start here."""

    name: str
    description: str
    base_command: Callable[[], list[str]]
    missing: Callable[[], str | None]  # what is not installed, with the fix; None when ready

    def check_installed(self) -> None:
        """Raise TargetError with the install command when the peer's runtime or packages are missing."""
        problem = self.missing()
        if problem is not None:
            raise TargetError(f"peer {self.name!r} cannot start: {problem}")

    def command(self, settings: PeerSettings | None = None) -> list[str]:
        """The argv that starts this peer with ``settings`` (host, port, secrets, limits)."""
        return [*self.base_command(), *(settings or PeerSettings()).as_cli_args()]


def _node_missing() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed (need node >= 18 on PATH)"
    if not (NODE_WS_DIR / "node_modules" / "ws" / "package.json").is_file():
        return f"its npm packages are not installed; run: npm ci --prefix {NODE_WS_DIR}"
    return None


def _python_modules_missing(*modules: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        absent = [name for name in modules if importlib.util.find_spec(name) is None]
        return f"missing Python packages {', '.join(absent)}; run: pip install '.[peers]'" if absent else None

    return missing


PEERS: Final[dict[str, Peer]] = {
    peer.name: peer
    for peer in (
        Peer(
            "node-ws",
            "Node.js + ws: JSON.stringify once, ws.send to each subscriber",
            lambda: [shutil.which("node") or "node", str(NODE_WS_DIR / "server.js")],
            _node_missing,
        ),
        Peer(
            "picows",
            "picows + uvloop + orjson: encode once, transport.send to each subscriber",
            lambda: [sys.executable, "-m", "server_under_test.peers.picows_server"],
            _python_modules_missing("picows", "uvloop", "orjson"),
        ),
    )
}


def is_peer_name(server: str) -> bool:
    """Whether a ``--server`` value names a peer (``peer:NAME``) rather than a bundled preset or a URL."""
    return server.startswith(PEER_PREFIX)


def get_peer(server: str) -> Peer:
    """The peer named ``peer:NAME`` or ``NAME``; UsageError listing the known ones otherwise."""
    name = server.removeprefix(PEER_PREFIX)
    try:
        return PEERS[name]
    except KeyError:
        known = ", ".join(PEER_PREFIX + key for key in PEERS)
        raise UsageError(f"unknown peer server {server!r}; known: {known}") from None

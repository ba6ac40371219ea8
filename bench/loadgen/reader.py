"""One reader per process: every connection's socket in one epoll set, read by one greenlet.

With a greenlet per connection blocked in ``recv``, each frame costs a wake-up through gevent's hub
(an I/O watcher, two greenlet switches and a retried ``recv``). Here the hub wakes one greenlet when
the epoll set is readable, and it reads every ready socket in turn, so a frame costs one ``read``
and a slice, and the wake-up is shared by every socket that was ready at the same time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
from collections.abc import Callable

import gevent
from gevent import monkey
from gevent.socket import wait_read

logger = logging.getLogger("chatbench.reader")
# gevent's monkey-patching hides epoll (it would block the hub); it is only ever polled with timeout 0 here.
EPOLL: type[select.epoll] = monkey.get_original("select", "epoll")


class Reader:
    """The process's reader greenlet and the sockets it watches (``add``, ``remove``)."""

    def __init__(self) -> None:
        self._epoll = EPOLL()
        self._handlers: dict[int, Callable[[], None]] = {}
        self._greenlet: gevent.Greenlet | None = None

    def add(self, fd: int, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable()`` (in the reader greenlet; it must not block) whenever ``fd`` has data."""
        self._handlers[fd] = on_readable
        self._epoll.register(fd, select.EPOLLIN)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def remove(self, fd: int) -> None:
        """Stop watching ``fd``; call before closing it (its number may be reused at once)."""
        if self._handlers.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(fd)

    def __len__(self) -> int:
        return len(self._handlers)

    def _run(self) -> None:
        epoll, handlers = self._epoll, self._handlers
        while True:
            wait_read(epoll.fileno())
            for fd, _ in epoll.poll(0):
                handler = handlers.get(fd)
                if handler is None:
                    continue
                try:
                    handler()
                except Exception:  # one connection's bug must not stop the reads of every other
                    logger.exception("reader: handler for fd %d failed", fd)
                    self.remove(fd)


_readers: dict[int, Reader] = {}


def process_reader() -> Reader:
    """This process's reader (one per pid: Locust's ``--processes`` forks workers)."""
    pid = os.getpid()
    reader = _readers.get(pid)
    if reader is None:
        reader = _readers[pid] = Reader()
    return reader

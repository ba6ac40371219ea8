"""Cluster mode's parent process: the Redis (private or external), N worker processes on one port, one banner.

The supervisor reserves the port (a socket bound with SO_REUSEPORT that never listens), starts
``worker_count(config)`` workers (``ChatServer`` with ``worker_id``; each binds the same port with
SO_REUSEPORT, so the kernel spreads connections over them), prints one ``listening on`` line once all are
ready, restarts a worker that dies, and on SIGTERM / SIGINT forwards SIGTERM (each worker sends its
shutdown notice and closes 1012), waits, stops the private redis-server and exits 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import queue
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from typing import Any, Final

from bench.core.exceptions import ConfigError
from server_under_test.broker import redis_module
from server_under_test.config import ServerConfig, worker_count
from server_under_test.redis_server import PrivateRedis

logger = logging.getLogger("server_under_test")

READY_TIMEOUT_S: Final = 30.0
RESTART_DELAY_S: Final = 0.5
POLL_S: Final = 0.2
STOP_MARGIN_S: Final = 5.0


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT that never listens: it holds the port (0 picks
    one) for the workers, and the kernel gives it no connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def check_redis(url: str) -> None:
    """Fail at startup, in one line, when an external Redis does not answer."""
    module = redis_module()
    import asyncio

    async def ping() -> None:
        client = module.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(ping())
    except Exception as exc:
        raise ConfigError(f"cannot reach Redis at {url}: {exc}", key="redis_url") from None


def _worker_main(config: ServerConfig, worker_id: int, ready: Any, log_level: str) -> None:
    """One worker process: the ChatServer of a cluster, ready reported to the supervisor."""
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format=f"%(asctime)s %(levelname)s worker-{worker_id}: %(message)s"
    )
    from server_under_test.server import ChatServer  # the open-file limit is inherited, raised by the cli

    server = ChatServer(config, worker_id=worker_id)
    try:
        server.run(lambda url: ready.put((worker_id, os.getpid(), "")))
    except Exception as exc:
        ready.put((worker_id, os.getpid(), f"{type(exc).__name__}: {exc}"))
        raise SystemExit(2) from None


class Supervisor:
    """Starts, watches, restarts and stops the workers; ``run`` returns the exit code."""

    def __init__(self, config: ServerConfig, log_level: str = "warning") -> None:
        self.config = config
        self.count = worker_count(config)
        self.log_level = log_level
        self.redis = PrivateRedis(config.host if config.host in ("127.0.0.1", "::1") else "127.0.0.1")
        self.private = config.redis_url == "auto"
        self._context = multiprocessing.get_context("spawn")
        self._ready: Any = self._context.Queue()
        self.workers: dict[int, SpawnProcess] = {}
        self.restarts = 0
        self._stopping = False

    def run(self, announce: Callable[[str, str], None]) -> int:
        """Everything: Redis, the port, the workers, the banner, watching until a signal."""
        redis_module()
        url = self.redis.start() if self.private else self.config.redis_url
        try:
            if not self.private:
                check_redis(url)
            with reserve_port(self.config.host, self.config.port) as holder:
                port = holder.getsockname()[1]
                worker_config = dataclasses.replace(self.config, port=port, redis_url=url)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, self._on_signal)
                for worker_id in range(self.count):
                    self._spawn(worker_config, worker_id)
                failure = self._wait_ready()
                if failure:
                    self._stop_workers()
                    raise ConfigError(f"a worker did not start: {failure}", key="workers")
                host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
                announce(f"{self.config.scheme}://{host}:{port}", url if not self.private else "private")
                self._watch(worker_config)
                self._stop_workers()
        finally:
            self.redis.stop()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _spawn(self, config: ServerConfig, worker_id: int) -> None:
        process = self._context.Process(
            target=_worker_main, args=(config, worker_id, self._ready, self.log_level), name=f"chat-worker-{worker_id}"
        )
        process.start()
        self.workers[worker_id] = process

    def _wait_ready(self) -> str:
        """Wait for every worker's ready report; the first failure's text ('' when all are up)."""
        pending = set(self.workers)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while pending and time.monotonic() < deadline and not self._stopping:
            try:
                worker_id, _, error = self._ready.get(timeout=POLL_S)
            except queue.Empty:
                dead = [wid for wid in pending if not self.workers[wid].is_alive()]
                if dead:
                    return f"worker {dead[0]} exited with code {self.workers[dead[0]].exitcode}"
                continue
            if error:
                return str(error)
            pending.discard(worker_id)
        return f"workers {sorted(pending)} not ready within {READY_TIMEOUT_S:.0f} s" if pending else ""

    def _watch(self, config: ServerConfig) -> None:
        """Restart any worker that dies (and the private Redis) until a signal asks to stop."""
        died_at: dict[int, float] = {}
        while not self._stopping:
            wait([process.sentinel for process in self.workers.values()], POLL_S)
            with contextlib.suppress(queue.Empty):
                while True:
                    worker_id, _, error = self._ready.get_nowait()
                    if error:
                        logger.error("worker %d failed to start: %s", worker_id, error)
            if self.private:
                self.redis.restart_if_dead()
            now = time.monotonic()
            for worker_id, process in list(self.workers.items()):
                if process.is_alive() or self._stopping:
                    continue
                if worker_id not in died_at:
                    logger.error("worker %d (pid %s) exited with code %s", worker_id, process.pid, process.exitcode)
                    died_at[worker_id] = now
                if now - died_at[worker_id] >= RESTART_DELAY_S:
                    del died_at[worker_id]
                    self.restarts += 1
                    logger.warning("restarting worker %d", worker_id)
                    self._spawn(config, worker_id)

    def _stop_workers(self) -> None:
        """SIGTERM to each worker (graceful: notice, close 1012), then SIGKILL after the shutdown timeout."""
        for process in self.workers.values():
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_timeout_s + STOP_MARGIN_S
        for process in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                logger.warning("worker %s did not stop in time; killing it", process.name)
                process.kill()
                process.join()

"""The server object: startup, serve, shutdown with a graceful-shutdown timeout (uvicorn's ``server.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable
from typing import Final

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from bench.core import protocol
from server_under_test.app import ChatApp, now_ms
from server_under_test.backends import loop_factory
from server_under_test.cluster import ClusterChat
from server_under_test.config import ServerConfig
from server_under_test.fanout import BATCH_SUBPROTOCOL, select_subprotocol
from server_under_test.session import connection_class, serve_connection

logger = logging.getLogger("server_under_test")

SHUTDOWN_KIND: Final = "shutdown"
WRITE_LIMIT_LOW: Final = 16 * 1024
WORKER_HEADER: Final = "X-Chat-Worker"


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    if not (config.tls_cert and config.tls_key):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


class ChatServer:
    """Owns the listening socket, the app and the lifecycle. ``await startup()``, ``await serve()``
    (returns after ``request_shutdown()``), ``await shutdown()``; or ``run()`` for the whole thing."""

    def __init__(self, config: ServerConfig, app: ChatApp | None = None, *, worker_id: int = 0) -> None:
        """``worker_id``: this process's number in a cluster (broker = "redis"; server_under_test.supervisor)."""
        self.config = config
        self.app = app or ChatApp(config)
        self.cluster = ClusterChat(self.app, config.redis_url, worker_id) if config.broker == "redis" else None
        self.app.cluster = self.cluster
        self._server: Server | None = None
        self._connection = connection_class(self.app)
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The base URL the server listens on (port 0 resolved)."""
        if self._server is None:
            raise RuntimeError("the server has not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{self.config.scheme}://{host}:{port}"

    async def startup(self) -> None:
        """Open the history store and start listening; raises OSError when the address is in use."""
        self._stop = asyncio.Event()
        await self.app.history.open()
        cluster = self.cluster
        if cluster is not None:
            await cluster.start()
        try:
            self._server = await serve(
                serve_connection,
                self.config.host,
                self.config.port,
                create_connection=self._connection,
                subprotocols=[BATCH_SUBPROTOCOL],
                select_subprotocol=select_subprotocol,
                compression="deflate" if self.config.compression else None,
                max_size=self.config.max_message_bytes,
                max_queue=64,
                write_limit=self._write_limit(),
                ping_interval=self.config.ping_interval_s or None,
                ping_timeout=self.config.ping_interval_s or None,
                close_timeout=self.config.close_timeout_s,
                ssl=ssl_context(self.config),
                server_header=None,
                reuse_port=cluster is not None,  # the workers of a cluster share the port
                process_response=None if cluster is None else self._name_worker,
            )
        except BaseException:
            await self.app.history.close()
            if cluster is not None:
                await cluster.stop()
            raise

    def _name_worker(self, conn: ServerConnection, request: Request, response: Response) -> None:
        """Cluster mode: the upgrade says which worker took the connection (tests place clients with it)."""
        assert self.cluster is not None
        response.headers[WORKER_HEADER] = str(self.cluster.worker_id)

    def _write_limit(self) -> tuple[int, int]:
        """websockets' drain high-water mark sits above the slow-consumer bound plus one frame, so that an
        awaited ``send`` (naive fan-out, replies) never blocks on a slow peer: the policy acts first."""
        bound = self.config.write_buffer_bytes
        return bound + 2 * self.config.max_message_bytes + WRITE_LIMIT_LOW, max(bound // 2, WRITE_LIMIT_LOW)

    def request_shutdown(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def serve(self) -> None:
        """Wait until a shutdown is requested."""
        assert self._stop is not None, "call startup() first"
        await self._stop.wait()

    async def shutdown(self) -> None:
        """Stop listening, flush batches, tell every client (NOTIFICATION shutdown + close 1012), wait for
        the connections within ``shutdown_timeout_s`` (then cut the rest), and flush history."""
        if self._server is None:
            return
        server, self._server = self._server, None
        app = self.app
        for session in list(self._connection.api.sessions):  # idle keep-alive connections close now
            session.shutdown()
        app.fanout.flush_all(list(app.hub.channels.values()))
        notice = protocol.notification(
            SHUTDOWN_KIND, now_ms(), retryAfterMs=self.config.shutdown_retry_after_ms, reason="server shutting down"
        )
        app.outbox.write(tuple(app.hub.clients), app.codec.dumps(notice), 0)
        server.close(close_connections=True, code=protocol.CLOSE_RESTART, reason="server restart")
        try:
            await asyncio.wait_for(server.wait_closed(), self.config.shutdown_timeout_s)
        except TimeoutError:
            logger.warning("connections still open after %.1fs; cutting them", self.config.shutdown_timeout_s)
            for conn in list(server.connections):
                conn.transport.abort()
            for task in list(server.handler_tasks):
                task.cancel()
        for session in list(self._connection.api.sessions):  # any accepted while the listener closed
            session.shutdown()
        await app.history.close()
        if self.cluster is not None:
            await self.cluster.stop()

    async def run_async(self, on_ready: Callable[[str], None] | None = None) -> None:
        """startup, announce, serve until SIGTERM/SIGINT (or request_shutdown), shutdown."""
        await self.startup()
        loop = asyncio.get_running_loop()
        handled = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not main thread
                loop.add_signal_handler(sig, self.request_shutdown)
                handled.append(sig)
        try:
            if on_ready is not None:
                on_ready(self.url)
            await self.serve()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await self.shutdown()

    def run(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Run on the configured event loop until a signal asks to stop."""
        _, factory = loop_factory(self.config.loop)
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(self.run_async(on_ready))

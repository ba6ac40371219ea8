"""HTTP/1.1 on the WebSocket's port: keep-alive, request bodies, pipelining, bounded everywhere.

One :class:`HttpSession` per TCP connection parses requests with httptools (llhttp, the parser Node.js
uses), answers them in order through an :class:`HttpHandler` and, when the handler accepts a WebSocket
upgrade, hands the connection over (``on_upgrade``) with the request's head and the bytes read after it,
so that websockets performs the handshake on the same transport. The session knows nothing of the chat:
routes live in ``server_under_test.http_api``.

Bounds: a request head of ``MAX_HEAD_BYTES`` (431), a target of ``MAX_TARGET_BYTES`` (414),
``MAX_HEADERS`` header lines (431), a body of ``HttpLimits.max_body_bytes`` (413), at most about
``HttpLimits.max_pipeline`` parsed requests waiting (reading pauses beyond), an idle keep-alive connection
closed after ``HttpLimits.keepalive_s`` (408 if a request was half sent), and a client that does not read its
responses stops being read once ``WRITE_HIGH`` bytes wait.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import httptools

from bench.core.exceptions import BenchError
from server_under_test.auth import Identity

logger = logging.getLogger("server_under_test")

MAX_HEAD_BYTES: Final = 16 * 1024
MAX_TARGET_BYTES: Final = 8 * 1024
MAX_HEADERS: Final = 100
FEED_BYTES: Final = 2048  # the parser gets input in slices, so a full pipeline stops parsing mid-read
WRITE_HIGH: Final = 256 * 1024
WRITE_LOW: Final = 64 * 1024
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpError(BenchError):
    """A request refused with an HTTP status; ``close`` ends the connection after the answer."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None, close: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.close = close


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpLimits:
    max_body_bytes: int = 64 * 1024
    max_pipeline: int = 16
    keepalive_s: float = 5.0


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    upgrade: bool  # a WebSocket upgrade (``Upgrade: websocket``); the bytes after it are not HTTP

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def header(self, name: str) -> str:
        """A header's value ('' when absent); ``name`` in lower case."""
        return self.headers.get(name, "")

    def head_bytes(self) -> bytes:
        """The request head as it came (normalised), for the WebSocket handshake that takes over."""
        lines = [f"{self.method} {self.target} HTTP/{self.version}".encode("latin-1")]
        lines += [name + b": " + value for name, value in self.raw_headers]
        return b"\r\n".join(lines) + b"\r\n\r\n"


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The handler's answer to an accepted WebSocket upgrade: who the token proved."""

    identity: Identity


class HttpHandler(Protocol):
    async def handle(self, request: HttpRequest) -> HttpResponse | Upgrade: ...

    def error_response(self, error: HttpError, request: HttpRequest | None) -> HttpResponse: ...


OnUpgrade = Callable[[Upgrade, HttpRequest, bytes], None]

_PHRASES: Final = {status.value: status.phrase for status in http.HTTPStatus}
_date_cache: list[object] = [0, b""]


def http_date() -> bytes:
    """The ``Date`` header value, formatted once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True).encode()]
    value = _date_cache[1]
    assert isinstance(value, bytes)
    return value


def encode_response(response: HttpResponse, *, keep_alive: bool, head_only: bool) -> bytes:
    """Status line, headers and body as one buffer (one ``write``)."""
    status = response.status
    parts = [
        b"HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: %d\r\n"
        % (status, _PHRASES.get(status, "Unknown").encode(), http_date(), len(response.body))
    ]
    parts += [f"{name}: {value}\r\n".encode("latin-1") for name, value in response.headers]
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    if not head_only and status not in (204, 304):
        parts.append(response.body)
    return b"".join(parts)


class HttpSession:
    """The HTTP side of one connection (httptools' callbacks are the ``on_*`` methods)."""

    def __init__(
        self,
        transport: asyncio.Transport,
        handler: HttpHandler,
        limits: HttpLimits,
        on_upgrade: OnUpgrade,
        registry: set[HttpSession],
    ) -> None:
        self.transport = transport
        self.handler = handler
        self.limits = limits
        self.on_upgrade = on_upgrade
        self.registry = registry
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[HttpRequest | HttpError] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.pending = memoryview(b"")  # input not parsed yet (reading is paused while there is some)
        self.trailing = b""  # what followed a WebSocket upgrade request
        self.stopped = False  # no more parsing: an error, an upgrade or the end of input
        self.closing = False  # close once the queue is answered
        self.read_paused = False
        self.write_paused = False
        self.last_active = self.loop.time()
        self.idle_timer: asyncio.TimerHandle | None = None
        self._reset_message()
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        registry.add(self)
        self._arm_idle(limits.keepalive_s)

    # --- input ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.pending = memoryview(bytes(self.pending) + data) if self.pending else memoryview(data)
        self._feed()

    def eof_received(self) -> bool:
        """The client half-closed: answer what was sent, then close (True keeps the transport open; TLS
        transports cannot stay half open, so there the answers still due are lost, as the client chose)."""
        self.stopped = True
        self.closing = True
        busy = bool(self.queue) or self.worker is not None
        if not busy:
            self._finish()
        return busy and self.transport.get_extra_info("sslcontext") is None

    def _feed(self) -> None:
        parser = self.parser
        while self.pending and not self.stopped and len(self.queue) < self.limits.max_pipeline:
            chunk, self.pending = self.pending[:FEED_BYTES], self.pending[FEED_BYTES:]
            try:
                parser.feed_data(chunk)
            except httptools.HttpParserUpgrade as upgrade:
                self._after_upgrade(bytes(chunk[upgrade.args[0] :]) + bytes(self.pending))
            except httptools.HttpParserCallbackError as exc:
                refused = exc.__context__
                self._refuse(refused if isinstance(refused, HttpError) else HttpError(400, "bad request", close=True))
            except httptools.HttpParserError as exc:
                self._refuse(HttpError(400, f"malformed request: {exc}", close=True))
        self._flow_control()
        self._dispatch()

    def _after_upgrade(self, rest: bytes) -> None:
        last = self.queue[-1] if self.queue else None
        if isinstance(last, HttpRequest) and last.upgrade:
            self.trailing = rest
            self.stopped = True
            self.pending = memoryview(b"")
        else:  # another protocol (h2c ...) that we do not speak: go on with HTTP/1.1
            self.pending = memoryview(rest)

    def _refuse(self, error: HttpError) -> None:
        self.queue.append(error)
        self.stopped = True
        self.pending = memoryview(b"")

    def _flow_control(self) -> None:
        wait = bool(self.pending) or self.stopped or self.write_paused
        if wait and not self.read_paused:
            self.transport.pause_reading()
            self.read_paused = True
        elif not wait and self.read_paused:
            self.transport.resume_reading()
            self.read_paused = False

    # httptools callbacks

    def _reset_message(self) -> None:
        self.url = bytearray()
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.in_message = False

    def on_message_begin(self) -> None:
        self._reset_message()
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_TARGET_BYTES:
            raise HttpError(414, f"request target over {MAX_TARGET_BYTES} bytes", close=True)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        self.raw_headers.append((name, value))
        if self.head_size > MAX_HEAD_BYTES or len(self.raw_headers) > MAX_HEADERS:
            raise HttpError(431, f"request head over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers", close=True)

    def on_headers_complete(self) -> None:
        lengths = [value for name, value in self.raw_headers if name.lower() == b"content-length"]
        if any(value.isdigit() and int(value) > self.limits.max_body_bytes for value in lengths):
            raise HttpError(413, f"request body over {self.limits.max_body_bytes} bytes", close=True)
        expects = [value.lower() for name, value in self.raw_headers if name.lower() == b"expect"]
        if b"100-continue" in expects and not self.queue and self.worker is None:  # never ahead of an answer still due
            self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.limits.max_body_bytes:
            raise HttpError(413, f"request body over {self.limits.max_body_bytes} bytes", close=True)
        self.body.append(body)

    def on_message_complete(self) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in self.raw_headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1").strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        parser = self.parser
        upgrade = parser.should_upgrade() and "websocket" in headers.get("upgrade", "").lower()
        self.queue.append(
            HttpRequest(
                method=parser.get_method().decode("latin-1"),
                target=self.url.decode("latin-1"),
                version=parser.get_http_version(),
                headers=headers,
                raw_headers=self.raw_headers,
                body=b"".join(self.body),
                keep_alive=parser.should_keep_alive() and not upgrade,
                upgrade=upgrade,
            )
        )
        self._reset_message()

    # --- answering, in order --------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self.worker is None and self.queue and not self.write_paused:
            self.worker = self.loop.create_task(self._work())

    async def _work(self) -> None:
        try:
            while self.queue and not self.write_paused and not self.transport.is_closing():
                item = self.queue.popleft()
                if isinstance(item, HttpError):
                    self._write(self.handler.error_response(item, None), keep_alive=False, head_only=False)
                    continue
                try:
                    result = await self.handler.handle(item)
                except HttpError as exc:
                    result = self.handler.error_response(exc, item)
                except Exception:
                    logger.exception("HTTP handler failed on %s %s", item.method, item.path)
                    result = self.handler.error_response(HttpError(500, "internal error", close=True), item)
                if isinstance(result, Upgrade):
                    self._hand_over(result, item)
                    return
                keep = item.keep_alive and not result.close and not item.upgrade
                if self.closing and not self.queue:  # the last answer before an EOF or shutdown close
                    keep = False
                self._write(result, keep_alive=keep, head_only=item.method == "HEAD")
        finally:
            self.worker = None
        if self.transport.is_closing():
            return
        if self.closing and not self.queue:
            self._finish()
            return
        self._feed()

    def _write(self, response: HttpResponse, *, keep_alive: bool, head_only: bool) -> None:
        self.transport.write(encode_response(response, keep_alive=keep_alive, head_only=head_only))
        self.last_active = self.loop.time()
        if not keep_alive:
            self.closing = True
            self.stopped = True
            self.queue.clear()

    def _hand_over(self, upgrade: Upgrade, request: HttpRequest) -> None:
        self._detach()
        self.transport.resume_reading()
        self.on_upgrade(upgrade, request, self.trailing)

    def _finish(self) -> None:
        self._detach()
        self.transport.close()

    def _detach(self) -> None:
        self.registry.discard(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    # --- flow control and lifetime ------------------------------------------------------------

    def pause_writing(self) -> None:
        self.write_paused = True
        self._flow_control()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._flow_control()
        self._dispatch()

    def connection_lost(self) -> None:
        self._detach()
        if self.worker is not None:
            self.worker.cancel()

    def _arm_idle(self, delay: float) -> None:
        self.idle_timer = self.loop.call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        """Close a connection that completed no request for ``keepalive_s`` (408 if one is half sent)."""
        self.idle_timer = None
        if self.worker is not None or self.queue:
            self._arm_idle(self.limits.keepalive_s)
            return
        due = self.last_active + self.limits.keepalive_s
        if due > self.loop.time():
            self._arm_idle(due - self.loop.time())
            return
        if self.in_message:
            error = HttpError(408, "request not completed in time", close=True)
            self._write(self.handler.error_response(error, None), keep_alive=False, head_only=False)
        self._finish()

    def shutdown(self) -> None:
        """Server shutdown: close now when idle, else after the requests already read are answered."""
        self.stopped = True
        self.closing = True
        if self.worker is None and not self.queue:
            self._finish()

"""Message history: a bounded in-memory store and a durable SQLite store (WAL, writes batched off the loop).

Ids are allocated on the event loop, monotonic per channel from 1, so that a message can be fanned out
the moment it is accepted. Paging is exact: ``before`` gives the newest ``limit`` messages older than an
id, ``after`` the oldest ``limit`` newer than an id, neither the newest page; each page is oldest first.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Final, Protocol

logger = logging.getLogger("server_under_test")

Message = dict[str, Any]
WRITER_BATCH_MAX: Final = 2000
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    has_more: bool


class HistoryStore(Protocol):
    """What the server needs from a history backend."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def last_id(self, channel_id: str) -> int: ...

    def allocate_id(self, channel_id: str) -> int: ...

    def append(self, channel_id: str, message: Message) -> None: ...

    async def page(self, channel_id: str, *, before: int | None, after: int | None, limit: int) -> Page: ...

    def pending_writes(self) -> int: ...

    def failure(self) -> str | None:
        """Why the store is not storing everything (None: healthy); /healthz and /metrics report it."""
        ...

    def accepting(self) -> bool:
        """Whether an ``append`` now will be stored (False refuses publishes with an ERROR)."""
        ...


class _Ids:
    """Per-channel id counters shared by both stores."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def last_id(self, channel_id: str) -> int:
        return self._last.get(channel_id, 0)

    def allocate_id(self, channel_id: str) -> int:
        next_id = self._last.get(channel_id, 0) + 1
        self._last[channel_id] = next_id
        return next_id


class _ChannelLog:
    """One channel's retained messages: ids ``low..high`` live at ``messages[id - first_id]``; evicted
    ones stay in the list until a chunk of them can be deleted at once (amortised O(1))."""

    __slots__ = ("first_id", "low", "messages")

    def __init__(self, first_id: int) -> None:
        self.first_id = first_id
        self.low = first_id
        self.messages: list[Message] = []

    @property
    def high(self) -> int:
        return self.first_id + len(self.messages) - 1

    def evict_through(self, message_id: int) -> int:
        """Forget every message up to ``message_id``; how many were still retained."""
        evicted = max(0, min(message_id, self.high) - self.low + 1)
        self.low += evicted
        dead = self.low - self.first_id
        if dead >= max(64, len(self.messages) // 2):
            del self.messages[:dead]
            self.first_id = self.low
        return evicted


def message_bytes(message: Message) -> int:
    """An estimate of what a stored message costs in memory (its strings plus the dict around them)."""
    return len(message["content"]) + len(message["clientMsgId"] or "") + len(message["senderId"]) + 400


class MemoryHistory(_Ids):
    """The newest ``per_channel`` messages of each channel, in process memory, and about ``max_bytes``
    over all channels: past it, the oldest messages of the whole server go first. A message evicted by
    its channel's bound still counts until it is the oldest, which keeps the bookkeeping O(1) a message
    and the arrival queue bounded by ``max_bytes`` too."""

    def __init__(self, per_channel: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__()
        self._per_channel = per_channel
        self._max_bytes = max_bytes
        self._bytes = 0
        self._logs: dict[str, _ChannelLog] = {}
        self._arrivals: deque[tuple[_ChannelLog, int, int]] = deque()  # (log, id, bytes), oldest first

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def pending_writes(self) -> int:
        return 0

    def failure(self) -> str | None:
        return None

    def accepting(self) -> bool:
        return True

    def retained_bytes(self) -> int:
        return self._bytes

    def append(self, channel_id: str, message: Message) -> None:
        log = self._logs.get(channel_id)
        if log is None:
            log = self._logs[channel_id] = _ChannelLog(message["id"])
        log.messages.append(message)
        size = message_bytes(message)
        self._bytes += size
        self._arrivals.append((log, message["id"], size))
        if log.high - log.low >= self._per_channel:
            log.evict_through(log.high - self._per_channel)
        while self._arrivals and (self._bytes > self._max_bytes or self._arrivals[0][1] < self._arrivals[0][0].low):
            oldest, message_id, size = self._arrivals.popleft()
            self._bytes -= size
            oldest.evict_through(message_id)

    async def page(self, channel_id: str, *, before: int | None, after: int | None, limit: int) -> Page:
        log = self._logs.get(channel_id)
        if log is None or log.high < log.low:
            return Page([], False)
        low, high = log.low, log.high
        if after is not None:
            start = max(after + 1, low)
            end = min(high, start + limit - 1)
            more = end < high
        else:
            end = high if before is None else min(before - 1, high)
            start = max(low, end - limit + 1)
            more = start > low
        if end < start:
            return Page([], False)
        return Page(log.messages[start - log.first_id : end - log.first_id + 1], more)


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    channel TEXT NOT NULL,
    id INTEGER NOT NULL,
    sender TEXT NOT NULL,
    message_type TEXT NOT NULL,
    content TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    server_timestamp INTEGER NOT NULL,
    client_msg_id TEXT,
    PRIMARY KEY (channel, id)
) WITHOUT ROWID
"""
_INSERT: Final = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_COLUMNS: Final = "id, sender, message_type, content, timestamp, server_timestamp, client_msg_id"


@dataclass(slots=True)
class _Read:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_Row = tuple[str, int, str, str, str, int, int, str | None]
_Op = _Row | _Read | None


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _as_message(row: tuple[Any, ...], channel_id: str) -> Message:
    return {
        "id": row[0],
        "channelId": channel_id,
        "senderId": row[1],
        "messageType": row[2],
        "content": row[3],
        "timestamp": row[4],
        "serverTimestamp": row[5],
        "clientMsgId": row[6],
    }


class SqliteHistory(_Ids):
    """Durable history in one SQLite file (WAL mode). One writer thread owns the connection: it commits
    queued messages in batches (one transaction per drain of the queue) and runs page reads in order with
    the writes, so a page never misses a message that was accepted before it was asked for."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._enqueued = 0
        self._written = 0
        self.lost = 0  # rows the database refused (logged; reported by failure())
        self._lock: IO[bytes] | None = None

    async def open(self) -> None:
        self._lock = _exclusive_lock(self._path + ".lock")
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            for channel, last in conn.execute("SELECT channel, MAX(id) FROM messages GROUP BY channel"):
                self._last[channel] = last
        except sqlite3.Error:
            conn.close()
            self._release()
            raise
        self._start(conn)

    def _start(self, conn: sqlite3.Connection) -> None:
        self._thread = threading.Thread(target=self._run, args=(conn,), name="history-writer", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Write everything accepted, then stop; a writer that died is replaced to drain the queue."""
        if self._thread is None:
            return
        if not self._thread.is_alive():
            logger.error("history writer had stopped; draining %d queued messages", self.pending_writes())
            self._start(sqlite3.connect(self._path, check_same_thread=False, isolation_level=None))
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        self._release()

    def failure(self) -> str | None:
        if self._thread is not None and not self._thread.is_alive():
            return "the history writer has stopped"
        if self.lost:
            return f"the history store refused {self.lost} messages (see the log)"
        return None

    def accepting(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def pending_writes(self) -> int:
        return self._enqueued - self._written

    def append(self, channel_id: str, message: Message) -> None:
        self._queue.put(
            (
                channel_id,
                message["id"],
                message["senderId"],
                message["messageType"],
                message["content"],
                message["timestamp"],
                message["serverTimestamp"],
                message["clientMsgId"],
            )
        )
        self._enqueued += 1

    async def page(self, channel_id: str, *, before: int | None, after: int | None, limit: int) -> Page:
        def read(conn: sqlite3.Connection) -> Page:
            if after is not None:
                sql = f"SELECT {_COLUMNS} FROM messages WHERE channel = ? AND id > ? ORDER BY id LIMIT ?"
                rows = conn.execute(sql, (channel_id, after, limit + 1)).fetchall()
            else:
                bound = before if before is not None else 2**62
                sql = f"SELECT {_COLUMNS} FROM messages WHERE channel = ? AND id < ? ORDER BY id DESC LIMIT ?"
                rows = conn.execute(sql, (channel_id, bound, limit + 1)).fetchall()
                rows.reverse()
            more = len(rows) > limit
            if more:
                rows = rows[:limit] if after is not None else rows[1:]
            return Page([_as_message(row, channel_id) for row in rows], more)

        loop = asyncio.get_running_loop()
        future: asyncio.Future[Page] = loop.create_future()
        self._queue.put(_Read(read, future, loop))
        return await future

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                try:
                    if not self._drain(conn):
                        return
                except Exception:  # a bug must not stop the writer: the queue would grow unseen
                    logger.exception("history writer failed; going on")
        finally:
            conn.close()

    def _drain(self, conn: sqlite3.Connection) -> bool:
        """Take everything queued (up to a bound), commit writes in one transaction; False at the end."""
        ops: list[_Op] = [self._queue.get()]
        while len(ops) < WRITER_BATCH_MAX:
            try:
                ops.append(self._queue.get_nowait())
            except queue.Empty:
                break
        rows: list[_Row] = []
        for op in ops:
            if op is None:
                self._write(conn, rows)
                return False
            if isinstance(op, _Read):
                self._write(conn, rows)
                rows = []
                try:
                    op.loop.call_soon_threadsafe(_resolve, op.future, op.run(conn), None)
                except Exception as exc:  # OverflowError, ValueError as well as sqlite3.Error
                    op.loop.call_soon_threadsafe(_resolve, op.future, None, exc)
            else:
                rows.append(op)
        self._write(conn, rows)
        return True

    def _write(self, conn: sqlite3.Connection, rows: list[_Row]) -> None:
        """Commit rows in one transaction; if that fails, row by row, so one bad row loses only itself."""
        if not rows:
            return
        try:
            self._commit(conn, rows)
        except Exception:
            for row in rows:
                try:
                    self._commit(conn, [row])
                except Exception:
                    self.lost += 1
                    logger.exception("history store refused message %s of %r", row[1], row[0])
        self._written += len(rows)

    @staticmethod
    def _commit(conn: sqlite3.Connection, rows: list[_Row]) -> None:
        try:
            conn.execute("BEGIN")
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _exclusive_lock(path: str) -> IO[bytes] | None:
    """Hold an exclusive lock beside the database: ids are allocated in memory, so two servers must
    never write one file. Raises sqlite3.OperationalError when another server holds it."""
    try:
        import fcntl
    except ImportError:  # not on Windows
        return None
    handle = open(path, "ab")  # noqa: SIM115 - held open for the server's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise sqlite3.OperationalError(f"{path}: another server is using this history file") from None
    return handle


def open_store(kind: str, *, path: str, per_channel: int, max_bytes: int = DEFAULT_MAX_BYTES) -> HistoryStore:
    """The history backend called ``kind`` (memory, sqlite)."""
    if kind == "sqlite":
        return SqliteHistory(path)
    return MemoryHistory(per_channel, max_bytes)

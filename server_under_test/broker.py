"""Cluster mode's link to Redis: the keys, the Lua scripts, one pub/sub reader per worker, reconnection.

Keys (``{C}`` is a channel id, ``{U}`` a user id, ``N`` a worker id; docs/CLUSTER.md):

    chat:{C}:id         INCR: the channel's last message id
    chat:{C}:log        sorted set: stored messages (JSON) scored by id, the newest history_per_channel kept
    chat:{C}:members    hash: user -> connections of that user in the channel, over all workers
    chat:{C}:order      sorted set: members by first-join time (the SUBSCRIBED online list's order)
    chat:{C}:events     pub/sub channel (sharded where Redis >= 7): b"M"+stored JSON, b"E"+event JSON
    chat:user:{U}       set: the channels the user is in (USER_STATUS goes to each)
    chat:conns          hash: user -> open connections over all workers
    chat:invisible      set: users whose status is OFFLINE while connected
    chat:worker:N       hash: "C\\nU" -> memberships, "\\nU" -> connections held by worker N (cleaned up
                        by its successor after a crash)
    chat:notify         pub/sub channel to every worker: b"N" mentions, b"U" status echoes
    chat:epoch          a random token: a Redis that lost its data (restart without persistence) has none

A message is stored and published by one script (INCR, ZADD, trim, PUBLISH), so every worker receives a
channel's messages in id order. The reader task owns one connection in subscribe mode; when it breaks the
broker is down (publishes are refused, /healthz says degraded) until it reconnects, subscribes again and
catches up each local channel from the log, so a worker that was cut off loses nothing the log still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from bench.core.exceptions import ConfigError

logger = logging.getLogger("server_under_test")

CLIENT_HINT: Final = "pip install 'redis[hiredis]>=5'"
RECONNECT_MIN_S: Final = 0.05
RECONNECT_MAX_S: Final = 2.0
COMMAND_TIMEOUT_S: Final = 5.0
NOTIFY: Final = b"chat:notify"
EPOCH: Final = "chat:epoch"
CONNS: Final = "chat:conns"
INVISIBLE: Final = "chat:invisible"
CHAT: Final = 0x4D  # b"M"
EVENT: Final = 0x45  # b"E"
MENTION: Final = 0x4E  # b"N"
ECHO: Final = 0x55  # b"U"
_EVENTS_PREFIX: Final = b"chat:{"
_EVENTS_SUFFIX: Final = b"}:events"

PUBLISH_LUA: Final = """
local id = redis.call('INCR', KEYS[1])
local stored = '{"id":' .. id .. ARGV[1]
redis.call('ZADD', KEYS[2], id, stored)
local keep = tonumber(ARGV[2])
if id > keep then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', id - keep) end
redis.call(ARGV[4], ARGV[3], 'M' .. stored)
return id
"""
# KEYS: members, order, user's channels, worker, id, invisible; ARGV: user, channel, worker field, limit
JOIN_LUA: Final = """
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n == 1 then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'NX', tonumber(t[1]) * 1000000 + tonumber(t[2]), ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[2])
end
local limit = tonumber(ARGV[4])
local hidden = 0
for _, user in ipairs(redis.call('SMEMBERS', KEYS[6])) do
  if redis.call('HEXISTS', KEYS[1], user) == 1 then hidden = hidden + 1 end
end
local total = redis.call('ZCARD', KEYS[2])
local listed = {}
local start = 0
while #listed < limit and start < total do
  for _, user in ipairs(redis.call('ZRANGE', KEYS[2], start, start + 199)) do
    if #listed < limit and redis.call('SISMEMBER', KEYS[6], user) == 0 then listed[#listed + 1] = user end
  end
  start = start + 200
end
return {n, tonumber(redis.call('GET', KEYS[5]) or 0), total - hidden, listed}
"""
# KEYS: members, order, user's channels, worker; ARGV: user, channel, worker field, count
LEAVE_LUA: Final = """
if redis.call('HINCRBY', KEYS[4], ARGV[3], -tonumber(ARGV[4])) <= 0 then redis.call('HDEL', KEYS[4], ARGV[3]) end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[4]))
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[2])
  return 0
end
return n
"""
# KEYS: conns, worker, invisible; ARGV: user, worker field, delta
CONNECT_LUA: Final = """
local w = redis.call('HINCRBY', KEYS[2], ARGV[2], tonumber(ARGV[3]))
if w <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], tonumber(ARGV[3]))
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[1])
  return 0
end
return n
"""
RAISE_ID_LUA: Final = """
if tonumber(redis.call('GET', KEYS[1]) or 0) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


def channel_key(channel_id: str, what: str) -> str:
    return f"chat:{{{channel_id}}}:{what}"


def user_key(user_id: str) -> str:
    return f"chat:user:{{{user_id}}}"


def worker_key(worker_id: int) -> str:
    return f"chat:worker:{worker_id}"


def events_channel(channel_id: str) -> bytes:
    return _EVENTS_PREFIX + channel_id.encode() + _EVENTS_SUFFIX


def channel_of(pubsub_channel: bytes) -> str:
    return pubsub_channel[len(_EVENTS_PREFIX) : -len(_EVENTS_SUFFIX)].decode()


def redis_module() -> Any:
    """redis-py's asyncio package (a dependency of chatbench), or a ConfigError naming it."""
    try:
        import redis.asyncio
    except ImportError:
        raise ConfigError(f'broker = "redis" needs the redis client: {CLIENT_HINT}', key="broker") from None
    return redis.asyncio


def broker_errors() -> tuple[type[BaseException], ...]:
    """What a command raises when Redis is away."""
    import redis.exceptions

    return (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)


Handler = Callable[[str, int, bytes], Awaitable[None]]  # (channel id, kind, payload) for channel events
NotifyHandler = Callable[[int, bytes], Awaitable[None]]  # (kind, payload) for chat:notify


class RedisBroker:
    """Commands on a pool, plus one reader task on a connection of its own in subscribe mode."""

    def __init__(self, url: str, worker_id: int, on_event: Handler, on_notify: NotifyHandler) -> None:
        self.url = url
        self.worker_id = worker_id
        self.worker_key = worker_key(worker_id)
        self._on_event = on_event
        self._on_notify = on_notify
        module = redis_module()
        self.errors = broker_errors()
        self.redis: Any = module.Redis.from_url(
            url, socket_timeout=COMMAND_TIMEOUT_S, socket_connect_timeout=COMMAND_TIMEOUT_S, socket_keepalive=True
        )
        self.publish_script = self.redis.register_script(PUBLISH_LUA)
        self.join_script = self.redis.register_script(JOIN_LUA)
        self.leave_script = self.redis.register_script(LEAVE_LUA)
        self.connect_script = self.redis.register_script(CONNECT_LUA)
        self.raise_id_script = self.redis.register_script(RAISE_ID_LUA)
        self.sharded = False
        self.down: str | None = "not connected yet"
        self.epoch: bytes | None = None
        self.reconnects = 0
        self.disconnects = 0
        self.on_reset: Callable[[], Awaitable[None]] | None = None  # Redis lost its data: register again
        self.on_resubscribed: Callable[[], Awaitable[None]] | None = None  # catch up after a gap
        self._conn: Any = None
        self._acks: dict[bytes, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def publish_command(self) -> str:
        return "SPUBLISH" if self.sharded else "PUBLISH"

    async def open(self) -> None:
        """Connect and start the reader; waits until subscribed (a failure leaves the broker down and
        retrying in the background)."""
        self._task = asyncio.get_running_loop().create_task(self._read_forever(), name="redis-reader")
        try:
            await asyncio.wait_for(self.subscribe(NOTIFY), COMMAND_TIMEOUT_S)
        except TimeoutError:
            logger.error("Redis at %s did not answer at startup; retrying in the background", self.url)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(*self.errors):
            await self.redis.delete(self.worker_key)
        await self.redis.aclose()

    # --- subscriptions --------------------------------------------------------------------------

    def subscribe(self, channel: bytes) -> asyncio.Future[None]:
        """Subscribe the reader to ``channel``; the future resolves on Redis's confirmation."""
        future = self._acks.get(channel)
        if future is None or future.cancelled():
            future = self._acks[channel] = asyncio.get_running_loop().create_future()
            if self._conn is not None:
                self._spawn(self._send("SSUBSCRIBE" if self.sharded else "SUBSCRIBE", channel))
        return future

    def unsubscribe(self, channel: bytes) -> None:
        future = self._acks.pop(channel, None)
        if future is not None and not future.done():
            future.cancel()
        if self._conn is not None:
            self._spawn(self._send("SUNSUBSCRIBE" if self.sharded else "UNSUBSCRIBE", channel))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, *args: Any) -> None:
        try:
            await self._conn.send_command(*args)
        except self.errors as exc:
            logger.warning("Redis subscription command failed: %s", exc)

    # --- the reader -----------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._closing:
            conn = self.redis.connection_pool.make_connection()
            try:
                await conn.connect()
                await self._prepare()
                self._conn = conn
                for channel, future in list(self._acks.items()):
                    self._acks[channel] = asyncio.get_running_loop().create_future() if future.done() else future
                    await conn.send_command("SSUBSCRIBE" if self.sharded else "SUBSCRIBE", channel)
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except self.errors as exc:
                if self.down is None:
                    self.disconnects += 1
                    logger.error("lost Redis at %s: %s; refusing publishes until it is back", self.url, exc)
                self.down = f"the Redis broker is unavailable: {exc}"
            finally:
                self._conn = None
                await conn.disconnect()
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _prepare(self) -> None:
        """Detect sharded pub/sub and whether Redis lost its data since we last saw it."""
        info = await self.redis.info("server")
        self.sharded = int(str(info.get("redis_version", "0")).split(".")[0]) >= 7
        epoch = await self.redis.get(EPOCH)
        if epoch is None:
            await self.redis.set(EPOCH, secrets.token_hex(8), nx=True)
            epoch = await self.redis.get(EPOCH)
        lost = self.epoch is not None and epoch != self.epoch
        self.epoch = epoch
        if lost:
            logger.warning("Redis lost its data (restarted without persistence): history before now is gone")
            if self.on_reset is not None:
                await self.on_reset()

    async def _read(self, conn: Any) -> None:
        pending = set(self._acks)
        while True:
            reply = await conn.read_response(disable_decoding=True, timeout=None, push_request=True)
            if not isinstance(reply, list) or len(reply) < 3:
                continue
            kind, channel, data = reply[0], reply[1], reply[2]
            if kind in (b"smessage", b"message"):
                if channel == NOTIFY:
                    await self._on_notify(data[0], data[1:])
                else:
                    await self._on_event(channel_of(channel), data[0], data[1:])
            elif kind in (b"ssubscribe", b"subscribe"):
                future = self._acks.get(channel)
                if future is not None and not future.done():
                    future.set_result(None)
                pending.discard(channel)
                if not pending and self.down is not None:
                    await self._back_up()

    async def _back_up(self) -> None:
        was_down = self.down != "not connected yet"
        self.down = None
        if was_down:
            self.reconnects += 1
            logger.warning("Redis at %s is back; catching up", self.url)
            if self.on_resubscribed is not None:  # in the reader: live messages wait behind the catch-up
                await self.on_resubscribed()

"""History in Redis for cluster mode, behind ``history.HistoryStore``: each channel's stored messages in a
sorted set scored by id (``chat:{C}:log``, written by the broker's publish script), so a page is exact
whichever worker serves it. Ids are allocated by that script too (INCR), never here."""

from __future__ import annotations

from typing import Any

import orjson

from server_under_test.broker import RedisBroker, channel_key
from server_under_test.history import Message, Page


class RedisHistory:
    """Pages from Redis; ``last_id`` is the newest id this worker has seen (exact ids come from the scripts)."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.seen: dict[str, int] = {}  # channel -> newest id fanned out (or synced) on this worker

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def last_id(self, channel_id: str) -> int:
        return self.seen.get(channel_id, 0)

    def allocate_id(self, channel_id: str) -> int:
        raise RuntimeError("cluster mode allocates ids in Redis (the broker's publish script)")

    def append(self, channel_id: str, message: Message) -> None:
        raise RuntimeError("cluster mode stores messages in Redis (the broker's publish script)")

    async def page(self, channel_id: str, *, before: int | None, after: int | None, limit: int) -> Page:
        key = channel_key(channel_id, "log")
        redis = self.broker.redis
        if after is not None:
            rows: list[Any] = await redis.zrangebyscore(key, f"({after}", "+inf", start=0, num=limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
        else:
            high = "+inf" if before is None else f"({before}"
            rows = await redis.zrevrangebyscore(key, high, "-inf", start=0, num=limit + 1)
            more = len(rows) > limit
            rows = rows[:limit][::-1]
        return Page([orjson.loads(row) for row in rows], more)

    async def between(self, channel_id: str, after: int, through: int) -> list[Message]:
        """The stored messages with ``after < id <= through`` (a worker's catch-up after a gap)."""
        rows = await self.broker.redis.zrangebyscore(channel_key(channel_id, "log"), f"({after}", through)
        return [orjson.loads(row) for row in rows]

    def pending_writes(self) -> int:
        return 0

    def failure(self) -> str | None:
        return self.broker.down

    def accepting(self) -> bool:
        return self.broker.down is None

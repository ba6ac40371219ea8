"""A bounded per-channel message history with exact id paging (the peers' in-memory store).

Ids are 1, 2, 3, ... per channel; the ring keeps the newest ``capacity`` messages, so message ``id``
lives at slot ``(id - 1) % capacity`` and a page is a contiguous id range: no gap, no duplicate.
"""

from __future__ import annotations

from typing import Any, cast


class HistoryRing:
    """The newest ``capacity`` messages of one channel, paged by id, oldest first."""

    __slots__ = ("capacity", "last_id", "slots")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.last_id = 0
        self.slots: list[dict[str, Any] | None] = [None] * capacity

    @property
    def first_id(self) -> int:
        """The oldest id still held (1 when nothing was evicted yet)."""
        return max(1, self.last_id - self.capacity + 1)

    def append(self, message: dict[str, Any]) -> None:
        """Store ``message``, whose ``id`` must be ``last_id + 1``."""
        if message["id"] != self.last_id + 1:
            raise ValueError(f"message id {message['id']} does not follow {self.last_id}")
        self.slots[(message["id"] - 1) % self.capacity] = message
        self.last_id = message["id"]

    def page(
        self, *, before: int | None = None, after: int | None = None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` messages, oldest first, and whether more lie beyond the page.

        ``after`` pages forward from an id; ``before`` pages back; neither gives the newest page.
        """
        if after is not None:
            lo = max(self.first_id, after + 1)
            hi = min(self.last_id, lo + limit - 1)
            has_more = hi < self.last_id
        else:
            hi = self.last_id if before is None else min(self.last_id, before - 1)
            lo = max(self.first_id, hi - limit + 1)
            has_more = lo > self.first_id
        if lo > hi:
            return [], False
        cap, slots = self.capacity, self.slots
        held = [slots[(i - 1) % cap] for i in range(lo, hi + 1)]  # every slot in [first_id, last_id] is set
        return cast("list[dict[str, Any]]", held), has_more

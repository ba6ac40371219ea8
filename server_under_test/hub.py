"""Who is connected and who is in which channel: clients, channels and presence."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.server import ServerConnection

from server_under_test.auth import Identity
from server_under_test.ratelimit import FloodDetector, TokenBucket


class Client:
    """One WebSocket connection of one user; ``batch``: it negotiated JSON-array frames (docs/PROTOCOL.md)."""

    __slots__ = ("batch", "bucket", "channels", "conn", "evicted", "flood", "identity", "user_id")

    def __init__(
        self,
        conn: ServerConnection,
        identity: Identity,
        bucket: TokenBucket,
        flood: FloodDetector,
        *,
        batch: bool = False,
    ) -> None:
        self.conn = conn
        self.batch = batch
        self.identity = identity
        self.user_id = identity.user_id
        self.bucket = bucket
        self.flood = flood
        self.channels: set[str] = set()
        self.evicted = False


class Channel:
    """The subscribers of one channel and, in batched mode, the events waiting for the next flush
    (``timer``: a paced channel's flush that waits for its window)."""

    __slots__ = ("chat_pending", "last_flush", "members", "name", "pending", "timer", "users")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[Client, None] = {}  # an ordered set
        self.users: dict[str, int] = {}  # user id -> connections of that user in the channel, join order
        self.pending: list[dict[str, Any]] = []
        self.chat_pending = 0
        self.timer: asyncio.Handle | None = None
        self.last_flush = float("-inf")  # event-loop time of the last batched flush

    def add(self, client: Client) -> bool:
        """Add a connection; True when its user was not in the channel yet."""
        if client in self.members:
            return False
        self.members[client] = None
        count = self.users.get(client.user_id, 0)
        self.users[client.user_id] = count + 1
        return count == 0

    def remove(self, client: Client) -> bool:
        """Remove a connection; True when its user has no connection left in the channel."""
        if client not in self.members:
            return False
        del self.members[client]
        count = self.users[client.user_id] - 1
        if count:
            self.users[client.user_id] = count
            return False
        del self.users[client.user_id]
        return True


class Hub:
    """The registry of clients, channels and user statuses, all on the event loop."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.clients: set[Client] = set()
        self.by_user: dict[str, set[Client]] = {}
        self.status: dict[str, str] = {}
        self.invisible: set[str] = set()  # users whose status is OFFLINE while connected

    def connect(self, client: Client) -> bool:
        """Register a client; True when it is the user's first connection (the user comes online)."""
        self.clients.add(client)
        sessions = self.by_user.setdefault(client.user_id, set())
        sessions.add(client)
        if len(sessions) == 1:
            self.set_status(client.user_id, "ONLINE")
            return True
        return False

    def disconnect(self, client: Client) -> tuple[bool, list[Channel]]:
        """Unregister a client; (user went offline, channels the user has left entirely)."""
        self.clients.discard(client)
        left = [channel for name in list(client.channels) if (channel := self.leave(client, name)) is not None]
        sessions = self.by_user.get(client.user_id, set())
        sessions.discard(client)
        if sessions:
            return False, []
        self.by_user.pop(client.user_id, None)
        self.status.pop(client.user_id, None)
        self.invisible.discard(client.user_id)
        return True, left

    def join(self, client: Client, name: str) -> tuple[Channel, bool]:
        """Subscribe; (the channel, whether the user was not in it before)."""
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = Channel(name)
        client.channels.add(name)
        return channel, channel.add(client)

    def leave(self, client: Client, name: str) -> Channel | None:
        """Unsubscribe; the channel when the user has no other connection left in it, else None."""
        client.channels.discard(name)
        channel = self.channels.get(name)
        if channel is None:
            return None
        user_left = channel.remove(client)
        if not channel.members:
            del self.channels[name]
        return channel if user_left else None

    def set_status(self, user_id: str, status: str) -> None:
        self.status[user_id] = status
        if status == "OFFLINE":
            self.invisible.add(user_id)
        else:
            self.invisible.discard(user_id)

    def online(self, channel: Channel, limit: int) -> tuple[list[str], int]:
        """(up to ``limit`` users of the channel who are not OFFLINE, earliest joiners first; how many there
        are). O(limit), so that subscribing to a crowded channel stays cheap."""
        invisible = self.invisible
        listed: list[str] = []
        for user in channel.users:
            if len(listed) >= limit:
                break
            if user not in invisible:
                listed.append(user)
        hidden = sum(1 for user in invisible if user in channel.users) if invisible else 0
        return listed, len(channel.users) - hidden

    def audience(self, user_id: str) -> set[Client]:
        """Every connection that shares a channel with the user (for USER_STATUS)."""
        audience: set[Client] = set()
        for client in self.by_user.get(user_id, ()):
            for name in client.channels:
                channel = self.channels.get(name)
                if channel is not None:
                    audience.update(channel.members)
        return audience

    def subscriptions(self) -> int:
        return sum(len(client.channels) for client in self.clients)

"""Who is connected and who is in which channel: clients, channels and presence."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.server import ServerConnection

from server_under_test.auth import Identity
from server_under_test.ratelimit import FloodDetector, TokenBucket


class Client:
    """One WebSocket connection of one user."""

    __slots__ = ("bucket", "channels", "conn", "evicted", "flood", "identity", "user_id")

    def __init__(self, conn: ServerConnection, identity: Identity, bucket: TokenBucket, flood: FloodDetector) -> None:
        self.conn = conn
        self.identity = identity
        self.user_id = identity.user_id
        self.bucket = bucket
        self.flood = flood
        self.channels: set[str] = set()
        self.evicted = False


class Channel:
    """The subscribers of one channel and, in batched mode, the events waiting for the next flush."""

    __slots__ = ("chat_pending", "members", "name", "pending", "timer")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[Client, None] = {}  # an ordered set
        self.pending: list[dict[str, Any]] = []
        self.chat_pending = 0
        self.timer: asyncio.Handle | None = None

    def users(self) -> set[str]:
        return {client.user_id for client in self.members}


class Hub:
    """The registry of clients, channels and user statuses, all on the event loop."""

    def __init__(self) -> None:
        self.channels: dict[str, Channel] = {}
        self.clients: set[Client] = set()
        self.by_user: dict[str, set[Client]] = {}
        self.status: dict[str, str] = {}

    def connect(self, client: Client) -> bool:
        """Register a client; True when it is the user's first connection (the user comes online)."""
        self.clients.add(client)
        sessions = self.by_user.setdefault(client.user_id, set())
        sessions.add(client)
        if len(sessions) == 1:
            self.status[client.user_id] = "ONLINE"
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
        return True, left

    def join(self, client: Client, name: str) -> tuple[Channel, bool]:
        """Subscribe; (the channel, whether the user was not in it before)."""
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = Channel(name)
        first = not self._sessions_in(client.user_id, channel)
        channel.members[client] = None
        client.channels.add(name)
        return channel, first

    def leave(self, client: Client, name: str) -> Channel | None:
        """Unsubscribe; the channel when the user has no other connection left in it, else None."""
        client.channels.discard(name)
        channel = self.channels.get(name)
        if channel is None:
            return None
        channel.members.pop(client, None)
        if not channel.members:
            del self.channels[name]
        return None if self._sessions_in(client.user_id, channel) else channel

    def _sessions_in(self, user_id: str, channel: Channel) -> list[Client]:
        return [client for client in self.by_user.get(user_id, ()) if client in channel.members]

    def online(self, channel: Channel) -> list[str]:
        """The users in a channel who are not OFFLINE, sorted."""
        return sorted(user for user in channel.users() if self.status.get(user, "OFFLINE") != "OFFLINE")

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

"""The chat service: shared state and one handler per client message type (transport-free where it can be)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from bench.core import protocol
from bench.core.exceptions import ProtocolError
from bench.core.integers import parse_integer
from server_under_test.auth import Authenticator
from server_under_test.backends import JsonBackend, json_backend
from server_under_test.config import ServerConfig
from server_under_test.fanout import Fanout, Outbox, make_fanout
from server_under_test.history import HistoryStore, open_store
from server_under_test.hub import Channel, Client, Hub
from server_under_test.metrics import Metrics
from server_under_test.moderation import ContentFilter, WordFilter, mentions
from server_under_test.shapes import presence, stored_message


class Cluster(Protocol):
    """The handlers cluster mode takes over (``server_under_test.cluster.ClusterChat``, set by ChatServer)."""

    worker_id: int

    async def connected(self, client: Client) -> None: ...
    async def disconnected(self, client: Client) -> None: ...
    async def subscribe(self, client: Client, channel_id: str) -> None: ...
    async def unsubscribe(self, client: Client, channel_id: str) -> None: ...
    async def publish(self, client: Client, message: protocol.Publish) -> None: ...
    async def last_id(self, channel_id: str) -> int: ...
    async def channel_event(self, channel_id: str, event: dict[str, Any]) -> None: ...
    async def user_status(self, client: Client, status: str) -> None: ...
    def gauges(self) -> dict[str, Any]: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ChatApp:
    """Everything a connection's handler needs: config, registry, fan-out, history and counters."""

    def __init__(self, config: ServerConfig, *, content_filter: ContentFilter | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.codec: JsonBackend = json_backend(config.json)
        self.hub = Hub()
        self.outbox = Outbox(
            self.metrics, limit=config.write_buffer_bytes, policy=config.slow_consumer, coalesce=config.coalesce_writes
        )
        self.fanout: Fanout = make_fanout(
            config.fanout, self.outbox, self.codec, max_batch=config.max_batch, window_ms=config.batch_window_ms
        )
        self.history: HistoryStore = open_store(
            config.history,
            path=config.history_path,
            per_channel=config.history_per_channel,
            max_bytes=int(config.history_memory_mb * 1024 * 1024),
        )
        self.auth = Authenticator(
            secret=config.jwt_secret, password=config.password, ttl_s=config.token_ttl_s, users_file=config.users_file
        )
        self.content_filter = content_filter or WordFilter(config.content_filter)
        self.cluster: Cluster | None = None  # cluster mode (broker = "redis"): set by ChatServer

    # --- sending -------------------------------------------------------------------------------

    def reply(self, client: Client, message: dict[str, Any]) -> None:
        """A message to one client (not a channel event)."""
        if message["type"] == protocol.ERROR:
            self.metrics.chat_errors += 1
        self.outbox.write_one(client, self.codec.dumps(message))

    def refuse(self, client: Client, error: ProtocolError) -> None:
        self.reply(client, protocol.error(error.code, error.reason, now_ms()))

    def to_clients(self, clients: set[Client], message: dict[str, Any]) -> None:
        self.outbox.write(clients, self.codec.dumps(message), 0)

    # --- connection lifecycle ------------------------------------------------------------------

    async def connected(self, client: Client) -> None:
        self.metrics.chat_connections_accepted += 1
        self.hub.connect(client)
        if self.cluster is not None:
            await self.cluster.connected(client)

    async def disconnected(self, client: Client) -> None:
        if self.cluster is not None:
            return await self.cluster.disconnected(client)
        offline, left = self.hub.disconnect(client)
        if offline and self.config.presence:
            for channel in left:
                await self.fanout.deliver(channel, presence("OFFLINE", client.user_id, channel.name, now_ms()), False)

    # --- client messages -----------------------------------------------------------------------

    async def handle(self, client: Client, message: protocol.ClientMessage) -> None:
        if isinstance(message, protocol.Publish):
            await self.publish(client, message)
        elif isinstance(message, protocol.Subscribe):
            await self.subscribe(client, message.channel_id)
        elif isinstance(message, protocol.Unsubscribe):
            await self.unsubscribe(client, message.channel_id)
        elif isinstance(message, protocol.ReadReceipt):
            await self.read_receipt(client, message)
        else:
            await self.user_status(client, message.status)

    def _subscribed_channel(self, client: Client, channel_id: str) -> Channel:
        if channel_id not in client.channels:
            if not client.identity.may_use(channel_id):
                raise ProtocolError(protocol.FORBIDDEN, f"channel {channel_id!r} is not open to you")
            raise ProtocolError(protocol.NOT_SUBSCRIBED, f"subscribe to {channel_id!r} first")
        return self.hub.channels[channel_id]

    async def subscribe(self, client: Client, channel_id: str) -> None:
        if not client.identity.may_use(channel_id):
            raise ProtocolError(protocol.FORBIDDEN, f"channel {channel_id!r} is not open to you")
        if channel_id not in client.channels and len(client.channels) >= self.config.max_subscriptions:
            raise ProtocolError(protocol.BAD_MESSAGE, f"at most {self.config.max_subscriptions} subscriptions")
        if self.cluster is not None:
            return await self.cluster.subscribe(client, channel_id)
        existing = self.hub.channels.get(channel_id)
        if existing is not None:
            self.fanout.flush(existing)  # the state sync must not race a pending batch
        channel, first = self.hub.join(client, channel_id)
        last = self.history.last_id(channel_id)
        online, online_count = self.hub.online(channel, self.config.presence_list_max)
        synced = protocol.subscribed(channel_id, last, online, now_ms())
        synced["onlineCount"] = online_count
        self.reply(client, synced)
        if first and self.config.presence:
            await self.fanout.deliver(channel, presence("ONLINE", client.user_id, channel_id, now_ms()), False)

    async def unsubscribe(self, client: Client, channel_id: str) -> None:
        if channel_id not in client.channels:
            raise ProtocolError(protocol.NOT_SUBSCRIBED, f"not subscribed to {channel_id!r}")
        channel = self.hub.channels.get(channel_id)
        if channel is not None:
            self.fanout.flush(channel)
        self.hub.leave(client, channel_id)
        self.reply(client, protocol.unsubscribed(channel_id, now_ms()))
        if self.cluster is not None:
            await self.cluster.unsubscribe(client, channel_id)

    async def publish(self, client: Client, message: protocol.Publish) -> None:
        channel = self._subscribed_channel(client, message.channel_id)
        refusal = self.content_filter.check(message.content)
        if refusal is not None:
            raise ProtocolError(protocol.CONTENT_FILTERED, refusal)
        if self.cluster is not None:
            return await self.cluster.publish(client, message)
        if not self.history.accepting():
            raise ProtocolError(protocol.INTERNAL, "the history store is failing; the message was not accepted")
        server_ts = now_ms()
        history = self.history
        stored = stored_message(history.allocate_id(channel.name), channel.name, client.user_id, message, server_ts)
        history.append(channel.name, stored)
        self.metrics.chat_messages_in += 1
        await self.fanout.deliver(channel, protocol.chat_message(channel.name, stored, server_ts), True)
        if "@" in message.content:
            self.notify_mentions(channel, stored)

    def notify_mentions(self, channel: Channel, stored: dict[str, Any]) -> None:
        targets: set[Client] = set()
        for user in mentions(stored["content"]):
            if user != stored["senderId"] and self.hub.by_user.get(user):
                targets.update(self.hub.by_user[user])
        if targets:
            self.fanout.flush(channel)  # the message itself goes out before its notification
            notice = protocol.notification(
                "mention",
                now_ms(),
                channelId=channel.name,
                messageId=stored["id"],
                senderId=stored["senderId"],
                content=stored["content"][:200],
            )
            self.to_clients(targets, notice)

    async def read_receipt(self, client: Client, message: protocol.ReadReceipt) -> None:
        channel = self._subscribed_channel(client, message.channel_id)
        try:
            message_id = parse_integer(message.message_id)
        except ValueError as exc:
            raise ProtocolError(protocol.BAD_MESSAGE, f"'messageId' {exc}") from None
        cluster = self.cluster
        last = self.history.last_id(channel.name) if cluster is None else await cluster.last_id(channel.name)
        if not 1 <= message_id <= last:
            raise ProtocolError(protocol.BAD_MESSAGE, f"no message {message_id} in {channel.name!r}")
        event = protocol.read_receipt_event(channel.name, message_id, client.user_id, now_ms())
        if cluster is not None:
            return await cluster.channel_event(channel.name, event)
        await self.fanout.deliver(channel, event, False)

    async def user_status(self, client: Client, status: str) -> None:
        """One USER_STATUS per channel the user is in, through that channel's fan-out (so in order with its
        messages); the user's connections that are in no channel get one with ``channelId`` null."""
        if self.cluster is not None:
            return await self.cluster.user_status(client, status)
        user = client.user_id
        self.hub.set_status(user, status)
        sessions = self.hub.by_user.get(user, set())
        for name in sorted({name for session in sessions for name in session.channels}):
            channel = self.hub.channels.get(name)  # a naive fan-out's awaits may have emptied it meanwhile
            if channel is not None:
                await self.fanout.deliver(channel, presence(status, user, name, now_ms()), False)
        lone = {session for session in sessions if not session.channels}
        if lone:
            self.to_clients(lone, presence(status, user, None, now_ms()))

    # --- gauges --------------------------------------------------------------------------------

    def gauges(self) -> dict[str, Any]:
        extra = self.cluster.gauges() if self.cluster is not None else {}
        return {
            **extra,
            "chat_connections": lambda: len(self.hub.clients),
            "chat_channels": lambda: len(self.hub.channels),
            "chat_subscriptions": self.hub.subscriptions,
            "chat_history_pending_writes": self.history.pending_writes,
            "chat_history_healthy": lambda: int(self.history.failure() is None),
        }

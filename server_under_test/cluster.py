"""The chat handlers of one cluster worker (broker = "redis"): what ``ChatApp`` does in one process, with
ids, history, membership and presence in Redis and every channel event arriving through its pub/sub.

A worker subscribes to a channel's Redis events while it has local subscribers, and fans out what arrives
to them through the same batched fan-out as single-process mode (the sender's own copy included). Each
channel's messages arrive in id order; a jump in ids (a reconnect, a cut subscription) is filled from the
log before the message that revealed it, so a worker that was cut off catches up. What cannot be stored
or published while Redis is away is refused with an ERROR and counted (``chat_broker_failures_total``).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from bench.core import protocol
from bench.core.exceptions import ProtocolError
from server_under_test.app import ChatApp, now_ms
from server_under_test.broker import (
    CHAT,
    CONNS,
    ECHO,
    EVENT,
    INVISIBLE,
    MENTION,
    NOTIFY,
    RedisBroker,
    channel_key,
    events_channel,
    user_key,
)
from server_under_test.hub import Client
from server_under_test.moderation import mentions
from server_under_test.redis_history import RedisHistory
from server_under_test.shapes import presence, stored_message

logger = logging.getLogger("server_under_test")

ID_PREFIX = b'{"id":0'  # a stored message encodes its id first: the publish script writes the real one


class _Sync:
    """A channel's state syncs under way, and the events that wait for them."""

    __slots__ = ("count", "waiting")

    def __init__(self) -> None:
        self.count = 0
        self.waiting: list[tuple[int, bytes]] = []


class ClusterChat:
    """The cluster half of ChatApp's handlers; ChatApp delegates to it when ``app.cluster`` is set."""

    def __init__(self, app: ChatApp, url: str, worker_id: int) -> None:
        self.app = app
        self.worker_id = worker_id
        self.broker = RedisBroker(url, worker_id, self.on_event, self.on_notify)
        self.broker.on_reset = self.register_again
        self.broker.on_resubscribed = self.catch_up
        self.history = RedisHistory(self.broker)
        app.history = self.history
        self.seen = self.history.seen
        self._syncing: dict[str, _Sync] = {}

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.open()
        await self.forget_predecessor()

    async def stop(self) -> None:
        await self.broker.close()

    async def forget_predecessor(self) -> None:
        """Undo the memberships and connections a crashed worker of this id left in Redis (and tell the
        channels of the users that went offline with it)."""
        broker = self.broker
        try:
            held: dict[bytes, bytes] = await broker.redis.hgetall(broker.worker_key)
        except broker.errors as exc:
            logger.warning("cannot clean up after worker %d: %s", self.worker_id, exc)
            return
        if held:
            logger.warning("worker %d: removing %d registrations of its predecessor", self.worker_id, len(held))
        gone: set[str] = set()
        for field, count in sorted(held.items(), key=lambda item: not item[0].startswith(b"\n")):
            channel, _, user = field.decode().partition("\n")
            if not channel:
                if not await self._count_connection(user, -int(count)):
                    gone.add(user)
            elif not await self._leave(user, channel, int(count)) and user in gone:
                await self._publish_event(channel, presence("OFFLINE", user, channel, now_ms()))

    # --- Redis operations -----------------------------------------------------------------------

    async def _count_connection(self, user: str, delta: int) -> int:
        """Count a connection in or out; the user's connections over all workers afterwards."""
        broker = self.broker
        keys = [CONNS, broker.worker_key, INVISIBLE]
        return int(await broker.connect_script(keys=keys, args=[user, f"\n{user}", delta]))

    def _membership_keys(self, user: str, channel: str) -> list[str]:
        keys = [channel_key(channel, "members"), channel_key(channel, "order"), user_key(user)]
        return [*keys, self.broker.worker_key]

    async def _leave(self, user: str, channel: str, count: int = 1) -> int:
        """A membership out; the user's connections left in the channel over all workers."""
        script = self.broker.leave_script
        return int(
            await script(keys=self._membership_keys(user, channel), args=[user, channel, f"{channel}\n{user}", count])
        )

    async def _publish_event(self, channel: str, event: dict[str, Any]) -> None:
        broker = self.broker
        await broker.redis.execute_command(broker.publish_command, events_channel(channel), b"E" + orjson.dumps(event))

    def _failed(self, what: str, exc: BaseException) -> ProtocolError:
        self.app.metrics.chat_broker_failures += 1
        logger.warning("broker failure (%s): %s", what, exc)
        return ProtocolError(protocol.INTERNAL, f"the broker is unavailable; {what} was not accepted")

    def _check_up(self, what: str) -> None:
        if self.broker.down is not None:
            self.app.metrics.chat_broker_failures += 1
            raise ProtocolError(protocol.INTERNAL, f"the broker is unavailable; {what} was not accepted")

    # --- the handlers ChatApp delegates ---------------------------------------------------------

    async def connected(self, client: Client) -> None:
        try:
            await self._count_connection(client.user_id, 1)
        except self.broker.errors as exc:
            self._failed("the connection's presence", exc)

    async def disconnected(self, client: Client) -> None:
        channels = sorted(client.channels)
        self.app.hub.disconnect(client)
        self._drop_unused(channels)
        try:
            online = await self._count_connection(client.user_id, -1)
            for name in channels:
                if not await self._leave(client.user_id, name) and not online and self.app.config.presence:
                    await self._publish_event(name, presence("OFFLINE", client.user_id, name, now_ms()))
        except self.broker.errors as exc:
            self._failed("the disconnect's presence", exc)

    def _drop_unused(self, names: list[str]) -> None:
        """Unsubscribe the worker from channels it no longer has local subscribers in."""
        for name in names:
            if name not in self.app.hub.channels and name not in self._syncing:
                self.broker.unsubscribe(events_channel(name))
                self.seen.pop(name, None)

    async def subscribe(self, client: Client, channel_id: str) -> None:
        """Be subscribed in Redis before reading the last id (so nothing after it is missed), join, send
        the state sync from Redis, then what arrived meanwhile; ONLINE when the user is new to the channel.
        The channel's events wait while a sync is under way, so that SUBSCRIBED comes first."""
        self._check_up("the subscription")
        app, broker = self.app, self.broker
        existing = app.hub.channels.get(channel_id)
        if existing is not None:
            app.fanout.flush(existing)
        sync = self._syncing.setdefault(channel_id, _Sync())
        sync.count += 1
        try:
            await broker.subscribe(events_channel(channel_id))
            keys = [*self._membership_keys(client.user_id, channel_id), channel_key(channel_id, "id"), INVISIBLE]
            args = [client.user_id, channel_id, f"{channel_id}\n{client.user_id}", app.config.presence_list_max]
            first, last, count, online = await broker.join_script(keys=keys, args=args)
        except broker.errors as exc:
            await self._synced(channel_id, sync)
            raise self._failed("the subscription", exc) from None
        except BaseException:
            await self._synced(channel_id, sync)
            raise
        app.hub.join(client, channel_id)
        self.seen.setdefault(channel_id, int(last))
        synced = protocol.subscribed(channel_id, int(last), [user.decode() for user in online], now_ms())
        synced["onlineCount"] = int(count)
        app.reply(client, synced)
        await self._synced(channel_id, sync)
        if int(first) == 1 and app.config.presence:
            await self._send_event(channel_id, presence("ONLINE", client.user_id, channel_id, now_ms()))

    async def _synced(self, channel_id: str, sync: _Sync) -> None:
        """One sync of the channel is over: the last one delivers what waited, in order."""
        sync.count -= 1
        if sync.count:
            return
        while sync.waiting:
            waiting, sync.waiting = sync.waiting, []
            for kind, payload in waiting:
                await self._deliver(channel_id, kind, payload)
        if not sync.count:
            self._syncing.pop(channel_id, None)
            self._drop_unused([channel_id])

    async def unsubscribe(self, client: Client, channel_id: str) -> None:
        self._drop_unused([channel_id])
        try:
            await self._leave(client.user_id, channel_id)
        except self.broker.errors as exc:
            self._failed("the unsubscription's presence", exc)

    async def publish(self, client: Client, message: protocol.Publish) -> None:
        """Store and publish in one script; the fan-out (the sender's copy too) comes back from Redis."""
        self._check_up("the message")
        app, broker, name = self.app, self.broker, message.channel_id
        encoded = orjson.dumps(stored_message(0, name, client.user_id, message, now_ms()))
        keys = [channel_key(name, "id"), channel_key(name, "log")]
        args = [encoded[len(ID_PREFIX) :], app.config.history_per_channel, events_channel(name), broker.publish_command]
        try:
            message_id = int(await broker.publish_script(keys=keys, args=args))
        except broker.errors as exc:
            raise self._failed("the message", exc) from None
        app.metrics.chat_messages_in += 1
        targets = sorted(mentions(message.content) - {client.user_id})
        if targets:
            notice = {"users": targets, "channelId": name, "messageId": message_id, "senderId": client.user_id}
            notice["content"] = message.content[:200]
            await self._send_notify(MENTION, notice)

    async def last_id(self, channel_id: str) -> int:
        try:
            return int(await self.broker.redis.get(channel_key(channel_id, "id")) or 0)
        except self.broker.errors as exc:
            raise self._failed("the read receipt", exc) from None

    async def channel_event(self, channel_id: str, event: dict[str, Any]) -> None:
        """A channel event (a read receipt) to its subscribers on every worker."""
        self._check_up("the event")
        await self._send_event(channel_id, event)

    async def _send_event(self, channel_id: str, event: dict[str, Any]) -> None:
        try:
            await self._publish_event(channel_id, event)
        except self.broker.errors as exc:
            raise self._failed("the event", exc) from None

    async def _send_notify(self, kind: int, payload: dict[str, Any]) -> None:
        broker = self.broker
        try:
            await broker.redis.execute_command(broker.publish_command, NOTIFY, bytes((kind,)) + orjson.dumps(payload))
        except broker.errors as exc:
            raise self._failed("the notification", exc) from None

    async def user_status(self, client: Client, status: str) -> None:
        """USER_STATUS to each channel the user is in on any worker, and the echo to the user's
        connections that are in no channel (on any worker)."""
        self._check_up("the status")
        user, broker = client.user_id, self.broker
        self.app.hub.set_status(user, status)
        try:
            if status == "OFFLINE":
                await broker.redis.sadd(INVISIBLE, user)
            else:
                await broker.redis.srem(INVISIBLE, user)
            names = sorted(name.decode() for name in await broker.redis.smembers(user_key(user)))
        except broker.errors as exc:
            raise self._failed("the status", exc) from None
        for name in names:
            await self._send_event(name, presence(status, user, name, now_ms()))
        await self._send_notify(ECHO, {"userId": user, "status": status})

    # --- what arrives from Redis ----------------------------------------------------------------

    async def on_event(self, channel_id: str, kind: int, payload: bytes) -> None:
        sync = self._syncing.get(channel_id)
        if sync is not None:
            sync.waiting.append((kind, payload))
        else:
            await self._deliver(channel_id, kind, payload)

    async def _deliver(self, channel_id: str, kind: int, payload: bytes) -> None:
        channel = self.app.hub.channels.get(channel_id)
        if channel is None:
            return
        if kind == EVENT:
            await self.app.fanout.deliver(channel, orjson.loads(payload), False)
            return
        if kind != CHAT:
            return
        stored = orjson.loads(payload)
        message_id: int = stored["id"]
        seen = self.seen.get(channel_id)
        if seen is not None and message_id <= seen:
            return  # before this worker's state sync, or caught up already
        if seen is not None and message_id > seen + 1:
            await self._fill(channel_id, seen, message_id - 1)
        self.seen[channel_id] = message_id
        await self.app.fanout.deliver(
            channel, protocol.chat_message(channel_id, stored, stored["serverTimestamp"]), True
        )

    async def _fill(self, channel_id: str, after: int, through: int) -> None:
        """Deliver the stored messages ``after < id <= through`` that this worker missed."""
        try:
            missed = await self.history.between(channel_id, after, through)
        except self.broker.errors as exc:
            self.app.metrics.chat_broker_lost += through - after
            logger.error("cannot catch up %s (%d..%d): %s", channel_id, after + 1, through, exc)
            return
        self.app.metrics.chat_broker_lost += through - after - len(missed)
        channel = self.app.hub.channels.get(channel_id)
        for stored in missed:
            self.seen[channel_id] = stored["id"]
            if channel is not None:
                event = protocol.chat_message(channel_id, stored, stored["serverTimestamp"])
                await self.app.fanout.deliver(channel, event, True)

    async def catch_up(self) -> None:
        """After a reconnect: every local channel gets what was published while this worker was away."""
        for name in list(self.app.hub.channels):
            seen = self.seen.get(name)
            try:
                last = int(await self.broker.redis.get(channel_key(name, "id")) or 0)
            except self.broker.errors:
                return
            if seen is not None and last > seen:
                await self._fill(name, seen, last)
                self.seen[name] = max(self.seen.get(name, 0), last)

    async def on_notify(self, kind: int, payload: bytes) -> None:
        app = self.app
        data = orjson.loads(payload)
        if kind == ECHO:
            lone = {client for client in app.hub.by_user.get(data["userId"], ()) if not client.channels}
            if lone:
                app.to_clients(lone, presence(data["status"], data["userId"], None, now_ms()))
            return
        if kind != MENTION:
            return
        targets = {client for user in data.pop("users") for client in app.hub.by_user.get(user, ())}
        if targets:
            channel = app.hub.channels.get(data["channelId"])
            if channel is not None:
                app.fanout.flush(channel)  # the message itself goes out before its notification
            app.to_clients(targets, protocol.notification("mention", now_ms(), **data))

    async def register_again(self) -> None:
        """Redis lost its data: count this worker's connections and memberships in again, and keep each
        local channel's ids going up from the newest this worker has seen."""
        app = self.app
        for client in list(app.hub.clients):
            await self._count_connection(client.user_id, 1)
            for name in sorted(client.channels):
                keys = [*self._membership_keys(client.user_id, name), channel_key(name, "id"), INVISIBLE]
                await self.broker.join_script(keys=keys, args=[client.user_id, name, f"{name}\n{client.user_id}", 0])
        for name, seen in list(self.seen.items()):
            await self.broker.raise_id_script(keys=[channel_key(name, "id")], args=[seen])

    def gauges(self) -> dict[str, Any]:
        return {"chat_broker_up": lambda: int(self.broker.down is None), "chat_worker": lambda: self.worker_id}

"""The chat user all scenarios build on: a session (token, WebSocket, subscriptions) that survives drops.

Session: token (``--auth``) → WebSocket (``?token=``) → SUBSCRIBE each channel and wait for SUBSCRIBED.
The process's reader (``bench.loadgen.reader``) reads every user's socket; the user decodes its frames
(single objects or batched arrays), counts integrity and latency per message (no Locust event per
message) and, when the connection breaks, reconnects on the seed's schedule (``bench.loadgen.backoff``),
resubscribes and catches up through the history endpoint (``after`` = the last id seen), so that nothing is lost.

Publishing follows a fixed schedule (open model): the k-th message's intended time is
``t0 + k / rate``; the tag carries it, so a late send shows as latency, not as a lower rate.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import gevent
import gevent.event
import gevent.pool
from locust import User

from bench.core import protocol
from bench.core.exceptions import AuthError, BenchError, ClientConnectionError, ProtocolError
from bench.loadgen.backoff import Backoff
from bench.loadgen.http_api import ChatHttp, get_token
from bench.loadgen.integrity import Window
from bench.loadgen.metrics import Recorder
from bench.loadgen.runtime import Run, current
from bench.loadgen.wire import CATCH_UP, ECHO, StreamWire, Wire, WireHooks, hooks_of, stream_of
from bench.loadgen.wirekit import OPENED, SEND, Credentials
from bench.loadgen.wsclient import DEFAULT_MAX_MESSAGE, WebSocketConnection, insecure_ssl_context

logger = logging.getLogger("chatbench.user")
CATCHUP_LIMIT = 100
CATCHUP_MAX_PAGES = 1000
SUBSCRIBE_TIMEOUT_S = 10.0
_NO_CHANNEL = object()  # no channel looked up yet (None is a possible channelId)


def now_us() -> int:
    return time.time_ns() // 1000


class RecentFrames:
    """The last few frames decoded in this process, by their bytes: a broadcast frame reaches every
    subscriber of its channel here in the same few reads, and is decoded once (hashing it costs a
    tenth of decoding it). The messages are shared between users, so they are read-only."""

    __slots__ = ("_frames",)
    KEPT = 512
    LARGEST = 65536  # bytes; a larger frame is decoded each time, not kept

    def __init__(self) -> None:
        self._frames: dict[bytes, list[dict[str, Any]]] = {}

    def decode(
        self, payload: bytes, decode: Callable[[bytes], list[dict[str, Any]]]
    ) -> tuple[list[dict[str, Any]], bool]:
        """``decode(payload)`` (the wire's), and whether it came from a recent identical frame."""
        frames = self._frames
        messages = frames.get(payload)
        if messages is not None:
            return messages, True
        messages = decode(payload)
        if len(payload) <= self.LARGEST:
            if len(frames) >= self.KEPT:
                del frames[next(iter(frames))]  # the oldest
            frames[payload] = messages
        return messages, False


class RecentTags:
    """``protocol.split_tag`` for the tags of shared frames (``RecentFrames``): every receiver of a message
    in this process parses the same tag. Only for frames seen before: a miss costs more than a parse."""

    __slots__ = ("_fields",)
    KEPT = 65536  # then all are dropped at once

    def __init__(self) -> None:
        self._fields: dict[str, tuple[str, int, int, int]] = {}

    def split(self, tag: object) -> tuple[str, int, int, int] | None:
        known = self._fields
        fields = known.get(tag) if isinstance(tag, str) else None
        if fields is None:
            fields = protocol.split_tag(tag)
            if fields is not None:
                if len(known) >= self.KEPT:
                    known.clear()
                known[tag] = fields  # type: ignore[index]  # a str: split_tag found a tag in it
        return fields


RECENT_FRAMES = RecentFrames()  # one per process (a forked worker's copy is its own)
RECENT_TAGS = RecentTags()


class ChannelState:
    """What a user knows of one channel: its integrity window and the last message id seen.

    ``epoch`` counts the times the server came back without its history (ids started again):
    integrity is then kept per epoch (``key``), since ids of different epochs cannot be compared.
    """

    __slots__ = (
        "catchup_until",
        "channel",
        "epoch",
        "in_doubt",
        "last_id",
        "resume_after",
        "subscribe_sent_us",
        "subscribed",
        "window",
    )

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.epoch = 0
        self.subscribe_sent_us = 0  # when the last SUBSCRIBE went (tag clock)
        self.window: Window | None = None
        self.last_id: Any = None
        self.catchup_until: int | None = None
        self.resume_after: Any = None  # catch up after this id (set when a connection breaks, None once done)
        self.in_doubt: set[tuple[str, int]] = set()  # own publishes unconfirmed when a connection broke
        self.subscribed = gevent.event.AsyncResult()

    @property
    def key(self) -> str:
        """The channel as integrity knows it: its name, plus ``#epoch`` after a history reset."""
        return self.channel if self.epoch == 0 else f"{self.channel}#{self.epoch}"


class ChatUser(User):
    """A chat client. Subclasses choose channels and roles in ``on_start`` and run tasks."""

    abstract = True
    track_integrity: ClassVar[bool] = True
    kind: ClassVar[str] = ""

    def on_start(self) -> None:
        self.bench: Run = current()
        self.recorder: Recorder = self.bench.recorder
        self.params: dict[str, Any] = self.bench.params
        self.wire: Wire = self.bench.wire
        self.hooks: WireHooks = hooks_of(self.wire)
        self.stream: StreamWire | None = stream_of(self.wire)
        self.carry = b""  # a stream wire's incomplete packet at the end of the last message
        self.index, self.user_id = self.bench.claim_user(self.kind)
        self.target = self.host or ""
        insecure = self.params["tls-insecure"] == "on"
        self.http = ChatHttp(self.target, timeout=self.params["connect-timeout"], insecure=insecure)
        self.ssl_context = insecure_ssl_context() if insecure else None
        self.debug = self.index < int(self.params["ws-debug-users"])
        self.sync_clock = self.bench.sync_clock
        self.token: str | None = None
        self.ws: WebSocketConnection | None = None
        self.channels: dict[str, ChannelState] = {}
        self.publisher_id = f"{self.user_id}.{int(time.time() * 1000) % 100000}"
        self.seqs: dict[str, int] = {}  # per channel: each (user, channel) is one publisher stream
        # (publisher tag, seq) published, echo not yet seen -> (channel, last id seen on it when sent)
        self.unacked: dict[tuple[str, int], tuple[str, Any]] = {}
        self.backoff = Backoff(jitter=self.params["jitter"])
        self.greenlets = gevent.pool.Group()
        self.reconnecting = False
        self.opened: gevent.event.AsyncResult[dict[str, Any] | None] = gevent.event.AsyncResult()
        self.session_started = False
        self.gave_up = False
        self.bench.drain_checks.append(lambda: not self.unacked or self.gave_up)

    def clock_offset_us(self) -> int:
        """What to add to our clock to get the server's (``--clock-sync``), else 0."""
        return self.recorder.clock_offset_us if self.sync_clock else 0

    def channel_name(self, number: int) -> str:
        return f"{self.params['channel-prefix']}{number}"

    # -- session ---------------------------------------------------------------------------

    def open_session(self, channels: list[str]) -> bool:
        """Connect and subscribe to ``channels``; False (error counted) when it failed."""
        for channel in channels:
            self.channels.setdefault(channel, ChannelState(channel))
        try:
            self._connect()
        except BenchError as exc:
            self._failed(exc)
            return False
        self._start_reader()
        return self._subscribe_all(first=True)

    def start_session(self, channels: list[str]) -> bool:
        """``open_session``, retried on the seed's schedule until it works or the client gives up."""
        self.session_started = True
        backoff = Backoff(jitter=self.params["jitter"])
        while not self.open_session(channels):
            self._drop()
            delay = backoff.delay()
            if delay is None:
                self.gave_up = True
                self.recorder.error("gave_up")
                return False
            gevent.sleep(delay)
            if self.bench.stopping:
                return False
        return True

    def _drop(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.abort()
            self.recorder.connection_closed()

    def _connect(self) -> None:
        """Token (only if none yet: the seed reconnects with the same token), then the WebSocket."""
        self.recorder.count("connect_attempts")
        if self.token is None and self.params["auth"] != "none":
            self._login()
        wire = self.wire
        ws = WebSocketConnection(
            wire.url(self.target, self.params["ws-path"] or wire.default_path, self.token),
            timeout=self.params["connect-timeout"],
            ssl_context=self.ssl_context,
            debug=self.debug,
            label=self.user_id,
            subprotocols=wire.subprotocols,
            binary=wire.binary,
        )
        try:
            timing = ws.connect()
            for frame in self.hooks.first_frames(self.token):
                ws.send(frame)
        except ClientConnectionError as exc:
            if exc.reason == "http_401":
                self.token = None  # expired or revoked: log in again on the next attempt
            raise
        self.recorder.record("connect", timing.connect_us)
        self.recorder.record("handshake", timing.handshake_us)
        self.recorder.connection_opened()
        self.ws = ws
        self.carry = b""

    def _login(self) -> None:
        start = now_us()
        grant = get_token(
            self.http,
            self.params["auth"],
            self.login_user,
            password=self.params["password"],
            secret=self.params["jwt-secret"],
            hooks=self.hooks,
        )
        if self.params["auth"] == "login":
            self.recorder.record("token", now_us() - start)
            self.http.close()  # no idle HTTP connection per user; history requests open one again
        self.token = grant.token

    @property
    def echo(self) -> bool:
        """Whether the protocol sends a publisher its own message (else nothing is ever acknowledged)."""
        return ECHO in self.wire.capabilities

    @property
    def login_user(self) -> str:
        """Who this user logs in as: ``--user`` when given (one account for all), else its own id."""
        return str(self.params.get("user") or self.user_id)

    def _failed(self, exc: BenchError) -> None:
        if isinstance(exc, ClientConnectionError):
            reason = exc.reason
        elif isinstance(exc, AuthError):
            reason = f"auth_{exc.status}" if exc.status else "auth"
        else:
            reason = type(exc).__name__
        self.recorder.count("connect_failed")
        self.recorder.error(reason)
        self.environment.stats.log_error(protocol_name(reason), reason, str(exc))

    def _open_wire(self, ws: WebSocketConnection) -> bool:
        """The protocol's own login (STOMP or MQTT CONNECT, a Socket.IO namespace), then its keepalive."""
        frames = self.wire.opening(Credentials(self.publisher_id, self.login_user, self.params["password"]))
        if frames:
            self.opened = gevent.event.AsyncResult()
            try:
                for frame in frames:
                    ws.send(frame)
            except ClientConnectionError as exc:
                self._failed(exc)
                return False
            try:
                if self.opened.get(timeout=SUBSCRIBE_TIMEOUT_S) is None:
                    return False
            except gevent.Timeout:
                self.recorder.error("open_timeout")
                return False
        every = self.wire.keepalive_s
        if every:
            self.greenlets.spawn(self._keep_alive, ws, every)
        return True

    def _keep_alive(self, ws: WebSocketConnection, every: float) -> None:
        """The protocol's keepalive (STOMP heart-beat, MQTT PINGREQ) while ``ws`` is the connection."""
        frame = self.wire.keepalive()
        while True:
            gevent.sleep(every)
            if self.ws is not ws or not ws.open:
                return
            try:
                ws.send(frame)
            except ClientConnectionError:
                return

    def _subscribe_all(self, *, first: bool) -> bool:
        ws = self.ws
        if ws is None or not self._open_wire(ws):
            return False
        pending = []
        for channel, state in self.channels.items():
            state.subscribed = gevent.event.AsyncResult()
            sent = time.time()
            state.subscribe_sent_us = int(sent * 1e6) + self.clock_offset_us()
            try:
                ws.send(self.wire.subscribe(channel, int(sent * 1000)))
            except ClientConnectionError as exc:
                self._failed(exc)
                return False
            pending.append((channel, state, sent))
        for channel, state, sent in pending:
            try:
                reply = state.subscribed.get(timeout=SUBSCRIBE_TIMEOUT_S)
            except gevent.Timeout:
                self.recorder.error("subscribe_timeout")
                return False
            if reply is None:
                return False
            received = time.time()
            self.recorder.record("subscribe", int((received - sent) * 1e6))
            self.recorder.count("subscribed")
            if isinstance(reply.get("timestamp"), int | float):
                self.recorder.clock_sample(sent, float(reply["timestamp"]), received)
            if not first and self._catch_up(channel, state):
                self._settle_doubts(state)
        return True

    # -- receiving -------------------------------------------------------------------------

    def _start_reader(self) -> None:
        ws = self.ws
        if ws is not None:
            ws.start_reading(self._on_frames, functools.partial(self._on_lost, ws), self.greenlets.spawn)

    def _on_lost(self, ws: WebSocketConnection, exc: ClientConnectionError) -> None:
        """The connection broke or the server closed it: count it, then reconnect (in its own greenlet)."""
        if self.bench.stopping or self.ws is not ws:
            return
        self._connection_lost(exc)
        if self.reconnecting:
            if not self.opened.ready():
                self.opened.set(None)
            for state in self.channels.values():
                if not state.subscribed.ready():
                    state.subscribed.set(None)
            return
        self._reconnect()

    def _on_frames(self, payloads: list[bytes], arrived_us: int | None) -> None:
        """The messages of the frames one read brought: timed once, since they arrived together, when
        the kernel received them (``arrived_us``; else now): a reader busy with other sockets' frames
        does not add its own delay to the server's latency."""
        received = (arrived_us or time.time_ns() // 1000) + self.clock_offset_us()
        if self.stream is not None:
            payloads = self._whole_packets(self.stream, payloads)
        fanout: list[int] = []
        uncorrected: list[int] = []
        decode, wire_decode = RECENT_FRAMES.decode, self.wire.decode
        for payload in payloads:
            try:
                messages, shared = decode(payload, wire_decode)
            except ProtocolError:
                self.recorder.error("bad_frame")
                continue
            split = RECENT_TAGS.split if shared else protocol.split_tag
            self._on_messages(messages, received, fanout, uncorrected, split)
        if fanout:
            hists = self.recorder.current
            hists["fanout"].record_many(fanout)
            hists["fanout_uncorrected"].record_many(uncorrected)

    def _whole_packets(self, stream: StreamWire, payloads: list[bytes]) -> list[bytes]:
        """A stream wire's messages as runs of whole packets: a packet cut at the end of one message is
        carried over to the next (bounded like a message; past that, or unframeable, it is a bad frame)."""
        whole: list[bytes] = []
        for payload in payloads:
            data = self.carry + payload if self.carry else payload
            try:
                cut = stream.whole(data)
            except ProtocolError:
                self.recorder.error("bad_frame")
                self.carry = b""
                continue
            if cut:
                whole.append(data if cut == len(data) else data[:cut])
            self.carry = data[cut:]
            if len(self.carry) > DEFAULT_MAX_MESSAGE:
                self.recorder.error("bad_frame")
                self.carry = b""
        return whole

    def _on_messages(
        self,
        messages: list[dict[str, Any]],
        received: int,
        fanout: list[int],
        uncorrected: list[int],
        split_tag: Callable[[object], tuple[str, int, int, int] | None],
        live: bool = True,
    ) -> None:
        """The one receive path: live frames (``live``) and catch-up pages alike, message by message.

        Latencies of live deliveries go to ``fanout`` and ``uncorrected`` (recorded once per read by the
        caller). Names are bound once and the channel is looked up once per run of messages, since this
        loop is the load generator's hot path."""
        recorder = self.recorder
        channels, note, unacked = self.channels, recorder.slowest.note, self.unacked
        channel: object = _NO_CHANNEL
        state: ChannelState | None = None
        delivered = 0
        for message in messages:
            if message.get("type") != protocol.CHAT_MESSAGE:
                self._on_control(message)
                continue
            stored = message.get("message") or {}
            name = message.get("channelId") or stored.get("channelId")
            if name != channel:  # the server batches per channel: usually one look-up per frame
                channel, state = name, channels.get(str(name))
            if state is None:
                continue
            fresh = live
            message_id = stored.get("id")
            if message_id.__class__ is int:
                catchup_until = state.catchup_until
                if fresh and catchup_until is not None and message_id <= catchup_until:
                    fresh = False  # already fetched by the catch-up: an expected overlap
                last_id = state.last_id
                if last_id.__class__ is not int or message_id > last_id:
                    state.last_id = message_id
            tag: Any = stored.get("clientMsgId")  # a str whenever split_tag finds a tag in it
            fields = split_tag(tag)
            if fields is None:
                continue
            publisher, seq, intended, sent = fields
            if unacked and (publisher, seq) in unacked:
                self._acknowledged(state, publisher, seq, message_id, received - sent if fresh else None)
            window = state.window
            if window is None or not window.record(publisher, seq, message_id, sent, live=fresh):
                continue
            delivered += 1
            if fresh:
                latency = received - intended
                fanout.append(latency)
                uncorrected.append(received - sent)
                note(tag, intended, latency)
        recorder.delivered += delivered

    def _acknowledged(
        self, state: ChannelState, publisher: str, seq: int, message_id: object, rtt_us: int | None
    ) -> None:
        """Our own message came back: the server took it (its publish round trip, when it came live)."""
        self.unacked.pop((publisher, seq), None)
        self.recorder.acked(state.key, message_id)
        if rtt_us is not None:
            self.recorder.current["publish_rtt"].record(rtt_us)

    def _on_control(self, message: dict[str, Any]) -> None:
        """Any server message but CHAT_MESSAGE."""
        kind = message.get("type")
        if kind == protocol.SUBSCRIBED:
            self._on_subscribed(message)
        elif kind == protocol.ERROR:
            self.recorder.error(f"server_{message.get('code')}")
        elif kind == SEND:  # a reply the protocol owes (a pong, a PUBACK): not from the reader greenlet
            self.greenlets.spawn(self.send, message["frame"])
        elif kind == OPENED:
            self.opened.set(message)
        else:
            self.on_other(message)

    def _on_subscribed(self, message: dict[str, Any]) -> None:
        """Open the integrity window here, in the reader, before any later message is handled."""
        channel = str(message.get("channelId"))
        state = self.channels.get(channel)
        if state is None:
            return
        last_id = message.get("lastMessageId")
        if isinstance(last_id, int) and isinstance(state.last_id, int) and last_id < state.last_id:
            self._history_reset(state, last_id)
        if state.window is None and self.track_integrity:
            state.window = self.recorder.open_window(
                state.key,
                last_id if isinstance(last_id, int) else None,
                subscribe_sent_us=state.subscribe_sent_us,
                confirmed_us=now_us() + self.clock_offset_us(),
                own_prefix=None if self.echo else f"{self.publisher_id}/",
            )
        if state.last_id is None:
            state.last_id = last_id
        state.subscribed.set(message)

    def _history_reset(self, state: ChannelState, last_id: int) -> None:
        """The server came back with ids lower than seen (its history is gone): start a new epoch.

        What this user was owed before the restart and did not get counts as lost (the old window
        closes at the last id it saw); its own publishes never acknowledged are given up."""
        self.recorder.count("history_resets")
        if state.window is not None:
            self._close(state.window)
            state.window = None
        publisher = f"{self.publisher_id}/{state.channel}"
        self.unacked = {key: sent for key, sent in self.unacked.items() if key[0] != publisher}
        state.in_doubt.clear()
        state.epoch += 1
        state.last_id = last_id
        state.resume_after = state.catchup_until = None

    def on_other(self, message: dict[str, Any]) -> None:
        """READ_RECEIPT, USER_STATUS, NOTIFICATION, ...: counted; subclasses may react (reading only: the
        message may be shared with other users of the process, see ``RecentFrames``)."""
        self.recorder.count(f"received_{message.get('type')}")

    # -- losing and regaining the connection -----------------------------------------------

    def _connection_lost(self, exc: ClientConnectionError) -> None:
        """The catch-up on reconnect starts after the last id seen, or earlier: where a catch-up still
        owed started (a second break before it ran), or the last id seen when an unconfirmed publish
        went, so that the catch-up tells whether the server stored it (``_settle_doubts``)."""
        for key, (channel, seen_then) in self.unacked.items():
            state = self.channels.get(channel)
            if state is not None:
                state.in_doubt.add(key)
                state.resume_after = _earlier(state.resume_after, seen_then)
        for state in self.channels.values():
            state.resume_after = _earlier(state.resume_after, state.last_id)
        self.ws = None
        self.recorder.connection_closed()
        self.recorder.error(exc.reason)
        self.environment.stats.log_error("WS", "connection", f"{exc.reason}: {exc.detail}")

    def _reconnect(self) -> bool:
        """The seed's handleReconnection: wait, try, back off; True once resubscribed."""
        down = time.time()
        if self.params["reconnect"] != "on":
            self.gave_up = True
            return False
        self.backoff.reset()
        self.reconnecting = True
        try:
            while True:
                delay = self.backoff.delay()
                if delay is None:
                    self._give_up(down)
                    return False
                gevent.sleep(delay)
                if self.bench.stopping:
                    return False
                try:
                    self._connect()
                except BenchError as exc:
                    self._failed(exc)
                    continue
                self._start_reader()
                if self._subscribe_all(first=False):
                    back = time.time()
                    self.recorder.record("reconnect", int((back - down) * 1e6))
                    self.recorder.storm_user(down, back, self.backoff.attempt)
                    return True
                self._drop()  # subscribing failed on an open connection: drop it and retry
        finally:
            self.reconnecting = False

    def _give_up(self, down: float) -> None:
        self.gave_up = True
        self.recorder.error("gave_up")
        self.recorder.storm_user(down, None, self.backoff.attempt)
        for state in self.channels.values():
            if state.window is not None:
                self._close(state.window)

    def _close(self, window: Window) -> None:
        """This user leaves a window now (tag clock)."""
        self.recorder.close_window(window, now_us() + self.clock_offset_us())

    def _catch_up(self, channel: str, state: ChannelState) -> bool:
        """Fetch what was published while away: history ``after`` the last id seen, page by page; True
        when the history was read to its end (else the next reconnect tries again from the same id)."""
        after = state.resume_after
        if after is None or CATCH_UP not in self.wire.capabilities:
            return False
        for _ in range(CATCHUP_MAX_PAGES):
            try:
                page = self.http.history_of(self.hooks, channel, self.token, after=after, limit=CATCHUP_LIMIT)
            except BenchError as exc:
                self.recorder.error(getattr(exc, "reason", "catchup_failed"))
                return False
            self.recorder.count("catchup_pages")
            events = [protocol.chat_message(channel, message, 0) for message in page.messages]
            self._on_messages(events, 0, [], [], protocol.split_tag, live=False)
            ids = [message["id"] for message in page.messages if isinstance(message.get("id"), int)]
            if ids:
                state.catchup_until = max(state.catchup_until or 0, *ids)
            if not page.has_more or not page.messages:
                state.resume_after = None
                return True
            after = page.messages[-1].get("id")
        return False

    def _settle_doubts(self, state: ChannelState) -> None:
        """After a complete catch-up: an own publish that was unconfirmed when the connection broke and
        that the history does not hold either was never taken by the server. It is counted as not
        accepted (the sender can tell: a chat client shows it as failed), not owed to the receivers."""
        for key in state.in_doubt:
            if self.unacked.pop(key, None) is not None:
                self.recorder.not_accepted(state.key, *key)
        state.in_doubt.clear()

    # -- publishing ------------------------------------------------------------------------

    def publish_loop(self, channel: str, rate: float, content: str, message_types: list[str]) -> None:
        """Publish at ``rate`` per second on a fixed schedule until the run stops."""
        interval = 1.0 / rate
        start = time.time()
        k = 0
        while not self.bench.stopping:
            intended = start + k * interval
            wait = intended - time.time()
            if wait > 0:
                gevent.sleep(wait)
                if self.bench.stopping:
                    return
            self.publish(channel, content, message_types[k % len(message_types)], int(intended * 1e6))
            k += 1

    def publish(self, channel: str, content: str, message_type: str, intended_us: int) -> bool:
        ws = self.ws
        if ws is None:
            self.recorder.count("publish_skipped")
            return False
        seq = self.seqs[channel] = self.seqs.get(channel, 0) + 1
        publisher = f"{self.publisher_id}/{channel}"
        offset = self.clock_offset_us()
        intended_us += offset
        sent = now_us() + offset
        tag = protocol.format_tag(publisher, seq, intended_us, sent)
        frame = self.wire.publish(channel, content, (sent - offset) // 1000, tag, message_type)
        state = self.channels.get(channel)
        key = channel if state is None else state.key
        try:
            ws.send(frame)
        except ClientConnectionError:
            self.recorder.count("publish_skipped")
            self.recorder.send_time(key, publisher, seq, 0)
            return False
        if self.echo:
            self.unacked[(publisher, seq)] = (channel, None if state is None else state.last_id)
        self.recorder.current["send_lag"].record(max(0, sent - intended_us))
        self.recorder.send_time(key, publisher, seq, sent)
        self.recorder.published(key)
        return True

    def send(self, frame: bytes) -> bool:
        """Send a frame the wire built (``self.wire.read_receipt(...)``, ...); False when not connected."""
        ws = self.ws
        if ws is None:
            return False
        try:
            ws.send(frame)
        except ClientConnectionError:
            return False
        return True

    # -- stopping --------------------------------------------------------------------------

    def on_stop(self) -> None:
        if not self.bench.stopping:
            for state in self.channels.values():
                if state.window is not None:
                    self._close(state.window)
        self.greenlets.kill(block=False)
        if self.ws is not None:
            self.ws.close()
            self.ws = None
            if not self.bench.stopping:  # "closed" counts connections that ended during the run
                self.recorder.connection_closed()
        self.http.close()


def _earlier(resume_after: Any, seen: Any) -> Any:
    """The earlier of two points to catch up after (ids that are not integers cannot be ordered: the
    one already set stays); None is no point."""
    if resume_after is None:
        return seen
    if seen is None or not (isinstance(resume_after, int) and isinstance(seen, int)):
        return resume_after
    return min(resume_after, seen)


def protocol_name(reason: str) -> str:
    """The Locust stats 'method' column for an error reason."""
    return "HTTP" if reason.startswith(("auth", "http")) else "WS"

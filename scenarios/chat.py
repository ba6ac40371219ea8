"""Chat: a realistic day in the chat, every user both reading and writing.

    locust -f scenarios/chat.py --host http://127.0.0.1:8765 --headless -u 200 -r 20 -t 60s \\
        --channels 20 --channels-per-user 3 --think-min 1 --think-max 5

Each user subscribes to ``--channels-per-user`` of ``--channels`` channels, then, after a think time
drawn between ``--think-min`` and ``--think-max`` seconds, does one action picked by weight:
publish (``--weight-publish``; ``--mention-percent`` of messages mention an online user, which
makes the server send a NOTIFICATION; ``--file-percent`` / ``--image-percent`` are FILE / IMAGE),
read receipt for the newest message seen (``--weight-read``), presence change ONLINE <-> AWAY
(``--weight-presence``), one history page back (``--weight-scroll``: the newest page first, then each
one older, from the top again at the channel's beginning; each page is checked to end right before
the previous one, with no gap or duplicate) or nothing (``--weight-idle``).

Measures everything the other scenarios do (fan-out, publish round trip, integrity over every
user's windows, history pages, connection latencies) plus counts of receipts, presence updates and
notifications received (``received`` in the result).
"""

from __future__ import annotations

import random
import time
from typing import Any

from locust import task

from bench.core import protocol
from bench.core.exceptions import BenchError
from bench.loadgen import runtime
from bench.loadgen.fanout import content_of
from bench.loadgen.integrity import page_faults
from bench.loadgen.options import Option
from bench.loadgen.user import ChatUser, now_us
from bench.loadgen.wire import HISTORY, PRESENCE, READ_RECEIPTS

OPTIONS: tuple[Option, ...] = (
    Option("channels", int, 20, "number of channels"),
    Option("channels-per-user", int, 3, "channels each user joins"),
    Option("message-bytes", int, 80, "typical message size in bytes"),
    Option("think-min", float, 1.0, "shortest think time between actions, seconds"),
    Option("think-max", float, 5.0, "longest think time between actions, seconds"),
    Option("weight-publish", float, 10.0, "weight of sending a message"),
    Option("weight-read", float, 5.0, "weight of sending a read receipt"),
    Option("weight-presence", float, 1.0, "weight of a presence change"),
    Option("weight-scroll", float, 2.0, "weight of loading one page of older messages"),
    Option("weight-idle", float, 4.0, "weight of doing nothing"),
    Option("mention-percent", float, 10.0, "percent of messages that mention an online user"),
    Option("file-percent", float, 5.0, "percent of messages of type FILE"),
    Option("image-percent", float, 5.0, "percent of messages of type IMAGE"),
)
ACTIONS = ("publish", "read", "presence", "scroll", "idle")


class ChatDayUser(ChatUser):
    kind = "c"

    def on_start(self) -> None:
        super().on_start()
        channels = int(self.params["channels"])
        per_user = max(1, min(int(self.params["channels-per-user"]), channels))
        first = random.Random(self.index).randrange(channels)
        self.my_channels = [self.channel_name((first + j) % channels) for j in range(per_user)]
        self.weights = [float(self.params[f"weight-{action}"]) for action in ACTIONS]
        self.content = content_of(int(self.params["message-bytes"]))
        self.online: set[str] = set()
        self.status = "ONLINE"
        self.scrolled_to: dict[str, int] = {}  # per channel: the oldest message id a scroll loaded

    def wait_time(self) -> float:
        return random.uniform(float(self.params["think-min"]), float(self.params["think-max"]))

    @task
    def act(self) -> None:
        if not self.session_started:
            self.start_session(self.my_channels)
            return
        if self.ws is None or self.bench.stopping:
            return
        action = random.choices(ACTIONS, weights=self.weights)[0]
        getattr(self, f"do_{action}")()

    def on_other(self, message: dict[str, Any]) -> None:
        super().on_other(message)
        if message.get("type") == protocol.USER_STATUS and isinstance(message.get("userId"), str):
            if message.get("status") == "OFFLINE":
                self.online.discard(message["userId"])
            else:
                self.online.add(message["userId"])

    def _on_subscribed(self, message: dict[str, Any]) -> None:
        super()._on_subscribed(message)
        self.online.update(user for user in message.get("online", []) if isinstance(user, str))

    # -- actions ---------------------------------------------------------------------------

    def do_publish(self) -> None:
        roll = random.uniform(0, 100)
        file_pct, image_pct = float(self.params["file-percent"]), float(self.params["image-percent"])
        kind = "FILE" if roll < file_pct else "IMAGE" if roll < file_pct + image_pct else "TEXT"
        content = self.content
        others = sorted(self.online - {self.user_id})
        if others and random.uniform(0, 100) < float(self.params["mention-percent"]):
            content = f"@{random.choice(others)} {content}"
        self.publish(random.choice(self.my_channels), content, kind, now_us())

    def do_read(self) -> None:
        channel = random.choice(self.my_channels)
        last_id = self.channels[channel].last_id
        if isinstance(last_id, int) and last_id > 0:
            self.send(self.wire.read_receipt(channel, last_id, int(time.time() * 1000)))
            self.recorder.count("read_receipts_sent")

    def do_presence(self) -> None:
        self.status = "AWAY" if self.status == "ONLINE" else "ONLINE"
        self.send(self.wire.user_status(self.status, int(time.time() * 1000)))

    def do_scroll(self) -> None:
        """One page older than the oldest loaded so far in a channel (the newest page first); at the
        channel's beginning the next scroll starts again from the newest page."""
        channel = random.choice(self.my_channels)
        before = self.scrolled_to.get(channel)
        start = now_us()
        try:
            page = self.http.history_of(self.hooks, channel, self.token, before=before)
        except BenchError as exc:
            self.recorder.error(getattr(exc, "reason", "history_failed"))
            return
        self.recorder.record("history_page", now_us() - start)
        self.recorder.count("pages")
        self.recorder.history["pages"] += 1
        self.recorder.history["messages"] += len(page.messages)
        ids = [m["id"] for m in page.messages if isinstance(m.get("id"), int)]
        duplicates, gaps = page_faults(ids, before)
        self.recorder.history["duplicates"] += duplicates
        self.recorder.history["gaps"] += gaps
        if ids and page.has_more:
            self.scrolled_to[channel] = min(ids)
        else:
            self.scrolled_to.pop(channel, None)

    def do_idle(self) -> None:
        pass


runtime.install("chat", OPTIONS, needs=frozenset({HISTORY, READ_RECEIPTS, PRESENCE}))

"""C channels x S subscribers, with P publishers on a fixed schedule (the publish and storm scenarios).

Subscribers are spread over the channels round robin within each Locust process (``home_channel``);
so are publishers.
``configure`` sets the two classes' ``fixed_count`` from the parameters, so ``-u`` should be
``channels * subscribers-per-channel + publishers`` (``bench run`` does this).
Receivers (subscribers) keep integrity windows; publishers only measure their own echo.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust import task

from bench.core import protocol
from bench.loadgen import wire
from bench.loadgen.options import Option
from bench.loadgen.user import ChatUser

FANOUT_NEEDS = frozenset({wire.ECHO})  # a publisher's own copy is its acknowledgement
IDLE_WAIT_S = 3600.0  # the reader greenlet does the work; the task only wakes to start the session
FANOUT_OPTIONS: tuple[Option, ...] = (
    Option("channels", int, 4, "number of channels (C)"),
    Option("subscribers-per-channel", int, 10, "subscribers on each channel (S)"),
    Option("publishers", int, 4, "publishers (P), spread over the channels"),
    Option("rate", float, 10.0, "messages per second per publisher (fixed schedule, open model)"),
    Option("message-bytes", int, 100, "content size of each message in bytes"),
    Option("message-types", str, "TEXT", "comma-separated mix of TEXT, FILE, IMAGE (round robin)"),
    Option(
        "warmup",
        float,
        0.0,
        "seconds from the test start before publishers begin (let every user connect); each then waits a "
        "random part of its interval, so that publishers do not all send at the same instant",
    ),
)


def message_types(params: dict[str, Any]) -> list[str]:
    kinds = [kind.strip().upper() for kind in str(params["message-types"]).split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in protocol.MESSAGE_TYPES]
    if unknown or not kinds:
        raise ValueError(f"--message-types: unknown {unknown}; use {sorted(protocol.MESSAGE_TYPES)}")
    return kinds


def content_of(size: int) -> str:
    return ("lorem ipsum dolor sit amet " * (size // 27 + 1))[: max(1, size)]


def home_channel(user: ChatUser) -> str:
    """The channel of a fan-out user: round robin over this process's users of its kind, offset by
    the worker index. Locust places fixed-count classes on workers in runs (40 publishers among 1,000
    subscribers can all land on one worker), so the run-wide interleaved index could put every
    publisher in the channels of one residue; counting per process spreads each worker's share."""
    local = user.index // user.bench.worker_count
    return user.channel_name((local + user.bench.worker_index) % int(user.params["channels"]))


class Subscriber(ChatUser):
    """Subscribes to one channel and receives; the reader greenlet does all the work."""

    abstract = True
    kind = "s"
    fixed_count = 1

    @task
    def hold(self) -> None:
        if not self.session_started:
            self.start_session([home_channel(self)])

    def wait_time(self) -> float:
        return IDLE_WAIT_S


class Publisher(ChatUser):
    """Subscribes to its channel (its echo is its acknowledgement) and publishes on schedule."""

    abstract = True
    kind = "p"
    fixed_count = 1
    track_integrity = False

    @task
    def publish_forever(self) -> None:
        if self.session_started:
            return
        channel = home_channel(self)
        if not self.start_session([channel]):
            return
        rate = float(self.params["rate"])
        delay = self.bench.started + float(self.params["warmup"]) - time.time()
        if delay > 0:  # measure the steady state, not the connection ramp; then a phase of its own
            gevent.sleep(delay + random.random() / rate)
        self.publish_loop(
            channel,
            rate,
            content_of(int(self.params["message-bytes"])),
            message_types(self.params),
        )

    def wait_time(self) -> float:
        return IDLE_WAIT_S


def configure_counts(subscriber: type[Subscriber], publisher: type[Publisher]) -> Callable[[dict[str, Any]], None]:
    """A ``configure`` hook that sizes the two classes from the parameters."""

    def configure(params: dict[str, Any]) -> None:
        subscriber.fixed_count = int(params["channels"]) * int(params["subscribers-per-channel"])
        publisher.fixed_count = int(params["publishers"])
        message_types(params)

    return configure

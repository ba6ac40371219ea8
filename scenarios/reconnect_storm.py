"""Reconnect storm: N subscribed users lose their connections at once and come back.

    locust -f scenarios/reconnect_storm.py --host http://127.0.0.1:8765 --headless -u 102 -r 102 -t 40s \\
        --channels 4 --subscribers-per-channel 25 --publishers 2 --rate 5 --storm-at 10 --storm-mode drop

``--storm-mode drop``: at ``--storm-at`` seconds every client drops its own connection (no close
handshake), which works against any target. ``--storm-mode restart``: the scenario cuts nothing;
the orchestrator (``bench run``) restarts the bundled server at ``--storm-at``. Either way users
reconnect on the seed's schedule (``--jitter`` none|full|equal|decorrelated), resubscribe, and
catch up through history from the last id they saw, while publishers keep their schedule.

Measures (``storm`` in the result): time until 50%, 95% and 100% of the cut users are back and
resubscribed, attempts per user, peak connection attempts per second, users that gave up, messages
missed during the outage and recovered by catch-up (``throughput.recovered``; ``lost`` stays 0 when
catch-up works), and the recovery curve.
"""

from __future__ import annotations

import time
import weakref

import gevent

from bench.loadgen import fanout, runtime
from bench.loadgen.options import Option
from bench.loadgen.runtime import Run
from bench.loadgen.user import ChatUser

STORM_OPTIONS: tuple[Option, ...] = (
    *fanout.FANOUT_OPTIONS,
    Option("storm-at", float, 10.0, "seconds after the start when connections are cut"),
    Option(
        "storm-mode",
        str,
        "drop",
        "drop: every client drops at once; restart: bench restarts the server",
        ("drop", "restart"),
    ),
)


class Storm:
    """One per process and run: at ``--storm-at`` every user of this process drops its connection."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.users: weakref.WeakSet[ChatUser] = weakref.WeakSet()
        delay = float(run.params["storm-at"]) - (time.time() - run.started)
        if run.params["storm-mode"] == "drop":
            gevent.spawn_later(max(0.0, delay), self.cut)

    def cut(self) -> None:
        if self.run.stopping:
            return
        for user in list(self.users):
            if user.ws is not None:
                user.ws.abort()


_storms: weakref.WeakKeyDictionary[Run, Storm] = weakref.WeakKeyDictionary()


def join_storm(user: ChatUser) -> None:
    storm = _storms.get(user.bench)
    if storm is None:
        storm = _storms[user.bench] = Storm(user.bench)
    storm.users.add(user)


class StormSubscriber(fanout.Subscriber):
    def on_start(self) -> None:
        super().on_start()
        join_storm(self)


class StormPublisher(fanout.Publisher):
    def on_start(self) -> None:
        super().on_start()
        join_storm(self)


runtime.install(
    "reconnect_storm",
    STORM_OPTIONS,
    fanout.configure_counts(StormSubscriber, StormPublisher),
    needs=fanout.FANOUT_NEEDS,
)

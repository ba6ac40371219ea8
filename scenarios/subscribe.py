"""Subscribe: a storm of connections and subscriptions, then a hold.

    locust -f scenarios/subscribe.py --host http://127.0.0.1:8765 --headless -u 1000 -r 200 -t 30s \\
        --channels 50 --channels-per-user 3

Each user gets a token (``--auth``), opens its WebSocket, subscribes to ``--channels-per-user``
channels (spread over ``--channels``) and holds the connection; the spawn rate ``-r`` is the storm's
arrival rate. A failed connection is retried on the seed's backoff schedule.

Measures token, connect (TCP/TLS), handshake (HTTP upgrade) and subscribe (SUBSCRIBE to SUBSCRIBED)
latencies, peak concurrent connections, and failures by reason (``errors``).
"""

from __future__ import annotations

from locust import task

from bench.loadgen import runtime
from bench.loadgen.fanout import IDLE_WAIT_S
from bench.loadgen.options import Option
from bench.loadgen.user import ChatUser

OPTIONS: tuple[Option, ...] = (
    Option("channels", int, 10, "number of channels the users spread over"),
    Option("channels-per-user", int, 1, "channels each user subscribes to"),
)


class SubscribeUser(ChatUser):
    """Connects, subscribes, holds."""

    track_integrity = False
    kind = "h"

    @task
    def hold(self) -> None:
        if self.session_started:
            return
        channels = int(self.params["channels"])
        per_user = max(1, min(int(self.params["channels-per-user"]), channels))
        self.start_session([self.channel_name((self.index + j) % channels) for j in range(per_user)])

    def wait_time(self) -> float:
        return IDLE_WAIT_S  # hold: the reader greenlet answers pings and reconnects


runtime.install("subscribe", OPTIONS)

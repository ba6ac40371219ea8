"""The server's counters and their Prometheus text exposition (format 0.0.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

# name -> (type, help); counters are attributes of Metrics, gauges are read from callbacks.
COUNTERS: Final[dict[str, str]] = {
    "chat_frames_in_total": "WebSocket data frames received from clients",
    "chat_frames_out_total": "WebSocket data frames written to clients (a batch is one frame)",
    "chat_messages_in_total": "PUBLISH messages accepted and stored",
    "chat_messages_out_total": "CHAT_MESSAGE deliveries (one per message per receiving connection)",
    "chat_writes_total": "transport writes of server frames (batched fan-out: one per connection per flush)",
    "chat_batches_total": "batched fan-out flushes of a channel (its waiting events encoded once)",
    "chat_dropped_total": "frames not written because the receiver's write buffer was over its bound",
    "chat_slow_consumer_disconnects_total": "connections closed because their write buffer was over its bound",
    "chat_rate_limited_total": "client frames refused by the rate limit",
    "chat_rate_limit_closes_total": "connections closed with 1008 for a sustained flood",
    "chat_auth_failures_total": "token requests and upgrades refused for bad credentials or tokens",
    "chat_errors_total": "ERROR messages sent to clients",
    "chat_connections_accepted_total": "WebSocket connections accepted",
    "chat_http_requests_total": "plain HTTP requests answered",
    "chat_broker_failures_total": "cluster mode: publishes and events refused or lost because Redis was unavailable",
    "chat_broker_lost_total": "cluster mode: messages a worker missed that the Redis log no longer held",
}
GAUGES: Final[dict[str, str]] = {
    "chat_connections": "open WebSocket connections",
    "chat_channels": "channels with at least one subscriber",
    "chat_subscriptions": "channel subscriptions across all connections",
    "chat_history_pending_writes": "messages waiting for the history writer",
    "chat_history_healthy": "1 while the history store stores every accepted message, else 0 (see /healthz)",
    "chat_broker_up": "cluster mode: 1 while this worker is connected and subscribed to Redis, else 0",
    "chat_worker": "cluster mode: this worker's id (each worker answers for itself)",
}


class Metrics:
    """Plain integer counters, incremented on the event loop (no locks needed)."""

    __slots__ = tuple(name.removesuffix("_total") for name in COUNTERS)

    def __init__(self) -> None:
        for slot in self.__slots__:
            setattr(self, slot, 0)

    chat_frames_in: int
    chat_frames_out: int
    chat_messages_in: int
    chat_messages_out: int
    chat_writes: int
    chat_batches: int
    chat_dropped: int
    chat_slow_consumer_disconnects: int
    chat_rate_limited: int
    chat_rate_limit_closes: int
    chat_auth_failures: int
    chat_errors: int
    chat_connections_accepted: int
    chat_http_requests: int
    chat_broker_failures: int
    chat_broker_lost: int

    def render(self, gauges: dict[str, Callable[[], float]]) -> str:
        """Prometheus text: every counter, then the gauges named in ``gauges``."""
        lines: list[str] = []
        for name, help_text in COUNTERS.items():
            lines += [
                f"# HELP {name} {help_text}",
                f"# TYPE {name} counter",
                f"{name} {getattr(self, name.removesuffix('_total'))}",
            ]
        for name, read in gauges.items():
            lines += [f"# HELP {name} {GAUGES[name]}", f"# TYPE {name} gauge", f"{name} {_number(read())}"]
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))

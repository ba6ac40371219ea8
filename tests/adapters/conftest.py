"""The real servers of other ecosystems, started once per session: RabbitMQ (STOMP, MQTT) and a socket.io app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils.brokers import RabbitMQ, start_rabbitmq, start_socketio_chat


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    with start_rabbitmq() as broker:
        yield broker


@pytest.fixture(scope="session")
def socketio_chat() -> Iterator[str]:
    # Pings every second, and a client that misses one for 1.5 s is dropped: the pong path is exercised.
    with start_socketio_chat(ping_interval_ms=1000, ping_timeout_ms=1500) as url:
        yield url

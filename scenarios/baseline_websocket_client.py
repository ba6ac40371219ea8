"""Baseline: a receiving chat user written the way locust-plugins users write WebSocket users today.

    locust -f scenarios/baseline_websocket_client.py --host http://127.0.0.1:8765 --headless -u 10 -r 10 -t 20s

websocket-client's ``create_connection`` (blocking, made cooperative by Locust's gevent monkey
patching), a receive greenlet calling ``ws.recv()``, ``json.loads`` per frame, and one Locust
``request`` event per received message with its latency (locust-plugins' ``SocketIOUser`` pattern).
It is the yardstick for ``bench.loadgen.wsclient`` in ``python -m bench.harness.clientbench`` and the
reference receiver for peer comparisons. Accepts single-object and batched-array frames.

Options: ``--baseline-channels`` (users spread over ``bench-0..N-1``), ``--auth``
(login: ``GET /auth/token`` with Basic user:``--password``; none: no token).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from itertools import count
from typing import Any

import gevent
import websocket
from locust import User, events, task


def _options(parser: Any) -> None:
    parser.add_argument("--baseline-channels", type=int, default=1, help="channels to spread users over")
    # the common options' names, so that the tool's one Locust launcher starts it like any scenario
    parser.add_argument("--auth", type=str, default="login", choices=("login", "none"))
    parser.add_argument("--password", type=str, default="bench")
    parser.add_argument("--ws-path", type=str, default="/ws")


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
_numbers = count()


class WebSocketClientUser(User):
    """Subscribes to one channel and fires a Locust event for every message received."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        number = next(_numbers)
        self.user_id = f"baseline-{number}"
        self.channel = f"bench-{number % max(1, options.baseline_channels)}"
        host = (self.host or "").rstrip("/")
        url = host.replace("http", "ws", 1) + options.ws_path
        if options.auth == "login":
            url += "?token=" + self._token(host, options.password)
        start = time.perf_counter()
        self.ws = websocket.create_connection(url)
        self.environment.events.request.fire(
            request_type="WS",
            name="connect",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=None,
            context={},
        )
        self.ws.send(json.dumps({"type": "SUBSCRIBE", "channelId": self.channel, "timestamp": int(time.time() * 1000)}))
        self.receiver = gevent.spawn(self.receive_loop)

    def _token(self, host: str, password: str) -> str:
        basic = base64.b64encode(f"{self.user_id}:{password}".encode()).decode()
        request = urllib.request.Request(f"{host}/auth/token", headers={"Authorization": f"Basic {basic}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            token: str = json.loads(response.read())["token"]
        return token

    def receive_loop(self) -> None:
        while True:
            frame = self.ws.recv()
            if not frame:
                return
            data = json.loads(frame)
            for message in data if isinstance(data, list) else [data]:
                self.on_message(message, len(frame))

    def on_message(self, message: dict[str, Any], size: int) -> None:
        if message.get("type") != "CHAT_MESSAGE":
            return
        tag = str(message["message"].get("clientMsgId") or "")
        parts = tag.rsplit(":", 3)
        latency_ms = (time.time() * 1e6 - int(parts[2])) / 1000 if len(parts) == 4 else 0.0
        self.environment.events.request.fire(
            request_type="WS",
            name="fanout",
            response_time=latency_ms,
            response_length=size,
            exception=None,
            context={},
        )

    @task
    def hold(self) -> None:
        gevent.sleep(1.0)

    def on_stop(self) -> None:
        self.receiver.kill(block=False)
        self.ws.close()

"""Locust users for the chat protocol (docs/PROTOCOL.md): five scenarios, precise mergeable metrics.

Each scenario is a plain locustfile (``locust -f scenarios/publish.py --host http://127.0.0.1:8765``):
``subscribe``, ``publish``, ``reconnect_storm``, ``infinite_scroll``, ``chat`` (docs/SCENARIOS.md).
Shared pieces:

- ``wsclient``: the gevent WebSocket client (websockets' Sans-I/O protocol over a gevent socket);
- ``backoff``: the seed's reconnect schedule and jitter policies;
- ``http_api``: tokens (login, locally minted, none) and history pages;
- ``user``: the chat user (session, reader greenlet, reconnect and catch-up, scheduled publishing);
- ``fanout``: channels x subscribers with scheduled publishers (``publish``, ``reconnect_storm``);
- ``integrity``, ``metrics``, ``storm``: what is measured and how partial measurements add up;
- ``options``, ``runtime``: parameters as Locust options, and the wiring into Locust's events;
- ``baseline_websocket_client``, ``loadbench``: the websocket-client yardstick and the benchmark.
"""

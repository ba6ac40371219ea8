"""Locust users for the chat protocol (docs/PROTOCOL.md): five scenarios, precise mergeable metrics.

Each scenario is a plain locustfile (``locust -f scenarios/publish.py --host http://127.0.0.1:8765``);
the shared pieces are the gevent WebSocket client (``wsclient``), the reconnect schedule (``backoff``),
the HTTP side (``http_api``), delivery integrity (``integrity``), the measurements and their merging
(``metrics``, ``storm``), the Locust wiring (``runtime``, ``options``) and the chat user (``user``).
"""

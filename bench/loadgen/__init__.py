"""The load library: Locust users that speak a chat protocol over gevent, and what they measure.

``wsclient`` (the gevent WebSocket client), ``reader`` (one epoll reader per process), ``http_api``
(tokens and history pages), ``user`` (session, login, reconnect, scheduled publishing, the one receive
path), ``fanout`` (channels x subscribers with publishers), ``backoff``, ``integrity``, ``metrics``
(recorder and aggregate), ``storm``, ``options`` and ``runtime`` (parameters as Locust options and the
wiring into Locust's events). The locustfiles in ``scenarios/`` build on it.

May import ``bench.core`` only; imported by ``scenarios/`` and by the harness's benchmarks.
"""

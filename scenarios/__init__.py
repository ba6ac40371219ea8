"""The locustfiles: what a user runs with ``locust -f`` (web UI included), copies and edits.

``subscribe``, ``publish``, ``reconnect_storm``, ``infinite_scroll``, ``chat`` (docs/SCENARIOS.md), and
``baseline_websocket_client`` (the websocket-client yardstick of ``bench perf --only loadgen``). Each is
built on the load library ``bench.loadgen`` (and ``bench.core``); no package imports this one.
"""

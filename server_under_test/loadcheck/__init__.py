"""``python -m server_under_test.loadcheck``: the same offered load against several presets, side by side.

It starts each preset as its own server process on a free port, drives it with lean asyncio WebSocket
clients (see ``leanws``), and prints delivered messages per second and fan-out latency for each preset,
with the ratio to the first. A benchmark, not a test: bounded to about 10 s per preset by default.
"""

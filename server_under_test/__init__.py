"""The bundled chat server under test: the wire protocol of docs/PROTOCOL.md over websockets.

Run it with ``python -m server_under_test --host 127.0.0.1 --port 0 --config default``; use it from
Python with :func:`server_under_test.config.load_config` and :class:`server_under_test.server.ChatServer`.
``peers/`` holds the peer servers on other stacks. Of ``bench`` it imports ``bench.core`` only; the tool
starts it (``bench.harness.servers``).
"""

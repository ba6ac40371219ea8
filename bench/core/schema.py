"""Names and thresholds that the server, the load library and the tool must agree on, defined once.

Pure constants: result field names, the saturation threshold, the token sources, and the environment
variables through which the tool and a Locust process exchange files.
"""

from __future__ import annotations

from typing import Final

LATENCY_NAMES: Final = (  # the latency histograms of a run, in the order a user meets them
    "token",
    "connect",
    "handshake",
    "subscribe",
    "publish_rtt",
    "fanout",
    "fanout_uncorrected",
    "fanout_last_receiver",
    "history_page",
    "reconnect",
    "loop_lag",  # the load generator's own event-loop lag: a 10 ms sleep's overshoot, in every process
    "send_lag",  # how late publishers sent against their schedule: the load generator's part of fan-out
)
SATURATION_PERCENT: Final = 90.0  # a load-generator process above this share of one core is saturated
AUTH_MODES: Final = ("login", "secret", "none")  # where load users get tokens: endpoint, minted, none

METRICS_ENV: Final = "BENCH_METRICS_OUT"  # the Locust master writes the run's metrics fragment here
LIVE_ENV: Final = "BENCH_LIVE_OUT"  # one JSON line per completed second
TIMEOUT_FACTOR_ENV: Final = "BENCH_TEST_TIMEOUT_FACTOR"  # scales every timeout of the test suite
WORKER_REFUSED: Final = "chatbench: worker refused:"  # the log line of a master that sent a worker home
WORKER_GREETED: Final = "chatbench: worker greeted:"  # the master's log line, then "<id>, N ready"

"""Publish: C channels x S subscribers, P publishers on a fixed schedule (open model).

    locust -f scenarios/publish.py --host http://127.0.0.1:8765 --headless -u 44 -r 44 -t 20s \\
        --channels 4 --subscribers-per-channel 10 --publishers 4 --rate 10 --message-bytes 100

Parameters (also in the web UI): --channels, --subscribers-per-channel, --publishers, --rate
(messages/s per publisher), --message-bytes, --message-types (TEXT,FILE,IMAGE), --warmup (seconds
before publishing starts, so the connection ramp is not measured), plus the common ones
(--auth, --ws-path, --jitter, --drain-seconds, ...). ``-u`` should be C*S+P.

Measures publish_rtt (the sender's own echo), fanout at every receiver from the intended send time
(and fanout_uncorrected from the actual send), fanout_last_receiver, delivered messages per second,
and integrity: lost, duplicated, reordered against the expected deliveries.
"""

from __future__ import annotations

from bench.loadgen import fanout, runtime


class PublishSubscriber(fanout.Subscriber):
    pass


class PublishPublisher(fanout.Publisher):
    pass


runtime.install(
    "publish",
    fanout.FANOUT_OPTIONS,
    fanout.configure_counts(PublishSubscriber, PublishPublisher),
    needs=fanout.FANOUT_NEEDS,
)

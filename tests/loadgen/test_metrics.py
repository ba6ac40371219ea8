"""Recorder partials merged by the Aggregate: the same figures as one process measuring everything."""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
import pytest
from locust.stats import bucket_response_time

from bench.core.histogram import Histogram
from bench.loadgen.metrics import Aggregate, Recorder, decode_ids, encode_ids, first_tick_at
from bench.loadgen.runtime import locust_buckets
from bench.loadgen.storm import storm_summary
from bench.results.run import judge_loadgen

NOW = 1_800_000_000.0


def _through_json(partial: dict[str, object]) -> dict[str, object]:
    """What crosses from a worker to the master (Locust serialises with msgpack; JSON is stricter)."""
    return orjson.loads(orjson.dumps(partial))  # type: ignore[no-any-return]


def test_merging_n_workers_gives_the_percentiles_of_one_histogram_of_all_samples() -> None:
    rng = random.Random(7)
    samples = [int(rng.lognormvariate(8, 1.5)) for _ in range(60_000)]
    single = Histogram()
    single.record_many(samples)
    aggregate = Aggregate("publish", {})
    for worker in range(4):
        recorder = Recorder(role="worker")
        recorder.pid = 1000 + worker
        for n, value in enumerate(samples[worker::4]):
            recorder.record("fanout", value)
            if n % 5000 == 4999:  # several seconds and reports
                recorder.tick(NOW + n // 5000, users=1, cpu_percent=10.0)
                aggregate.add(_through_json(recorder.partial()))
        recorder.tick(NOW + 99, users=1, cpu_percent=10.0)
        aggregate.add(_through_json(recorder.partial(final=True)))
    result = aggregate.result()
    assert result["latency_ms"]["fanout"] == single.summary_ms()
    merged = Histogram.decode(result["histograms"]["fanout"])
    assert merged.percentiles([50, 90, 99, 99.9, 99.99]) == single.percentiles([50, 90, 99, 99.9, 99.99])
    assert merged.count == len(samples)
    assert len(result["loadgen"]["processes"]) == 4


def test_integrity_adds_up_across_publisher_and_receiver_processes() -> None:
    publisher, receiver_a, receiver_b = Recorder(role="worker"), Recorder(role="worker"), Recorder(role="worker")
    publisher.pid, receiver_a.pid, receiver_b.pid = 1, 2, 3
    windows = [receiver_a.open_window("c", 0), receiver_b.open_window("c", 2)]
    for message_id in range(1, 11):
        publisher.published("c")
        publisher.acked("c", message_id)
        for window in windows:
            if message_id != 7 or window is windows[0]:  # receiver b misses id 7
                window.record("pub", message_id, message_id)
    aggregate = Aggregate("publish", {})
    for recorder in (publisher, receiver_a, receiver_b):
        aggregate.add(_through_json(recorder.partial(final=True)))
    throughput = aggregate.result()["throughput"]
    assert throughput["published"] == 10
    assert throughput["expected_deliveries"] == 10 + 8
    assert throughput["delivered"] == 17
    assert throughput["lost"] == 1
    assert throughput["unacked"] == 0


def test_a_publish_the_server_never_took_is_owed_to_nobody_by_ids_or_by_send_times() -> None:
    """Three sent; the third's connection broke before it was confirmed and the history lacked it."""
    publisher, receiver = Recorder(role="worker"), Recorder(role="worker")
    publisher.pid, receiver.pid = 1, 2
    by_ids, by_times = receiver.open_window("c", 0), receiver.open_window("c", None, subscribe_sent_us=5)
    for seq in (1, 2, 3):
        publisher.published("c")
        publisher.send_time("c", "pub", seq, 100 * seq)
    for seq in (1, 2):
        publisher.acked("c", seq)
        by_ids.record("pub", seq, seq)
        by_times.record("pub", seq, seq, 100 * seq)
    aggregate = Aggregate("publish", {})
    aggregate.add(_through_json(publisher.partial()))  # the send times cross before the verdict on the third
    publisher.not_accepted("c", "pub", 3)
    for recorder in (publisher, receiver):
        aggregate.add(_through_json(recorder.partial(final=True)))
    throughput = aggregate.result()["throughput"]
    assert (throughput["published"], throughput["not_accepted"], throughput["unacked"]) == (3, 1, 0)
    assert (throughput["expected_deliveries"], throughput["delivered"], throughput["lost"]) == (4, 4, 0)


def test_late_report_after_the_final_one_is_ignored() -> None:
    recorder = Recorder(role="worker")
    aggregate = Aggregate("publish", {})
    recorder.record("connect", 100)
    recorder.tick(NOW, users=1, cpu_percent=1.0)
    aggregate.add(recorder.partial(final=True))
    recorder.record("connect", 100)
    recorder.tick(NOW + 1, users=1, cpu_percent=1.0)
    aggregate.add(recorder.partial())
    assert aggregate.result()["latency_ms"]["connect"]["count"] == 1


def test_timeseries_sums_processes_per_second_and_keeps_worst_cpu() -> None:
    aggregate = Aggregate("publish", {})
    for pid, cpu in ((1, 20.0), (2, 95.0)):
        recorder = Recorder(role="worker")
        recorder.pid = pid
        recorder.connection_opened()
        recorder.count("delivered", 100)
        recorder.record("fanout", 2000)
        recorder.tick(NOW, users=5, cpu_percent=cpu)
        aggregate.add(recorder.partial(final=True))
    result = aggregate.result()
    [point] = result["timeseries"]
    assert (point["t"], point["users"], point["connections"], point["delivered_per_s"]) == (0, 10, 2, 200)
    assert point["cpu_percent"] == 95.0
    assert 1.9 < point["fanout_p50_ms"] < 2.1
    assert result["loadgen"]["saturated"] is True
    assert result["connections"]["peak"] == 2


@pytest.mark.parametrize(
    ("cores", "shared"),
    [(("vm:1", 1), 95.0), (("vm:0,1", 2), None)],
)  # fmt: skip
def test_processes_sharing_a_core_are_saturated_together(cores: tuple[str, int], shared: float | None) -> None:
    """Two processes pinned to one core at 45 % and 50 % fill it: neither alone crosses the line, their
    shared use of the core does; on two cores each has its own and they are not saturated."""
    aggregate = Aggregate("publish", {})
    for pid, cpu in ((1, 45.0), (2, 50.0)):
        recorder = Recorder(role="worker")
        recorder.pid, recorder.core_set = pid, cores
        recorder.tick(NOW, users=5, cpu_percent=cpu)
        aggregate.add(_through_json(recorder.partial(final=True)))
    [point] = aggregate.timeseries()
    assert point["cpu_percent"] == 50.0 and point.get("cpu_percent_of_shared_cores") == shared
    later = {**point, "t": 1, "cpu_percent": 1.0, "cpu_percent_of_shared_cores": 1.0}  # the stop second
    judged = judge_loadgen({"saturated": None}, [point, later], {})
    assert judged["saturated"] is (shared is not None)


def test_slowest_receiver_per_message() -> None:
    aggregate = Aggregate("publish", {})
    intended_us = int(time.time() * 1e6)
    for pid, latency in ((1, 500), (2, 900), (3, 700)):
        recorder = Recorder(role="worker")
        recorder.pid = pid
        recorder.slowest.note("p:1:0:0", intended_us, latency)
        recorder.slowest.note("p:2:0:0", intended_us, latency // 10)
        aggregate.add(recorder.partial(final=True))
    last = aggregate.result()["latency_ms"]["fanout_last_receiver"]
    assert (last["count"], last["max"]) == (2, 0.9)


def test_message_ids_survive_encoding() -> None:
    ids = [5, 3, 4, 1000, 1001, 2]
    assert decode_ids(encode_ids(ids)) == sorted(ids)


def test_storm_summary_times_to_50_95_100_percent() -> None:
    users: list[dict[str, Any]] = [
        {"down": 100.0, "back": 100.0 + t, "attempts": a} for t, a in ((1.0, 1), (1.0, 1), (2.5, 2), (4.75, 3))
    ]
    users.append({"down": 100.2, "back": None, "attempts": 10})
    summary = storm_summary(users, {99: 0, 100: 5, 101: 3, 102: 1})
    assert summary is not None
    assert (summary["back_50_s"], summary["back_95_s"], summary["back_100_s"]) == (2.5, None, None)
    assert summary["gave_up"] == 1
    assert summary["peak_attempts_per_s"] == 5
    assert summary["attempts_per_user"]["max"] == 10
    assert summary["recovery_curve"][-1] == [4.75, 0.8]


def test_clock_offset_comes_from_the_sample_with_the_lowest_round_trip() -> None:
    recorder = Recorder()
    # the server's clock is 250 ms ahead; the slow sample would suggest 400 ms
    recorder.clock_sample(NOW, (NOW + 0.6) * 1000 + 250 + 300, NOW + 0.6)
    recorder.clock_sample(NOW, (NOW + 0.001) * 1000 + 250, NOW + 0.002)
    assert abs(recorder.clock_offset_us - 250_000) <= 1000
    summary = recorder.clock_summary()
    assert summary is not None and summary["samples"] == 2 and summary["rtt_ms"] < 3


def test_recovery_curve_is_capped_and_ends_with_the_last_user() -> None:
    users: list[dict[str, Any]] = [{"down": 0.0, "back": 1 + i / 1000, "attempts": 1} for i in range(1000)]
    summary = storm_summary(users, {}, missed_recovered=7)
    assert summary is not None
    curve = summary["recovery_curve"]
    assert len(curve) <= 201 and curve[0] == [0.0, 0.0] and curve[-1] == [1.999, 1.0]
    assert summary["missed_recovered"] == 7


def test_old_seconds_are_settled_into_percentiles() -> None:
    aggregate = Aggregate("publish", {})
    recorder = Recorder(role="worker")
    recorder.record("fanout", 3000)
    recorder.slowest.note("p:1:0:0", 0, 3000)
    recorder.tick(time.time() - 100, users=1, cpu_percent=1.0)
    aggregate.add(recorder.partial(final=True))
    [point] = aggregate.points.values()
    assert "fanout" not in point and 2.9 < point["p50"] < 3.1  # settled: no histogram kept
    assert not aggregate.slowest and aggregate.last_receiver_done.count == 1
    assert 2.9 < aggregate.timeseries()[0]["fanout_p99_ms"] < 3.1


def test_histogram_buckets_hold_every_sample_for_feeding_locust() -> None:
    hist = Histogram()
    hist.record_many([1, 5, 5, 1000, 123_456])
    buckets = hist.buckets()
    assert sum(count for _, count in buckets) == 5
    assert buckets[0] == (1, 1) and buckets[1] == (5, 2)
    assert buckets[-1][0] == 123_456  # the top bucket is capped at the exact maximum


@pytest.mark.parametrize(("now", "first"), [(100.0, 101.0), (100.2, 101.0), (100.5, 101.0), (100.7, 102.0)])
def test_the_ticker_fires_on_whole_seconds_at_least_half_a_second_after_the_start(now: float, first: float) -> None:
    assert first_tick_at(now) == first


def test_locust_buckets_are_locusts_own_rounding() -> None:
    """The vectorised regrouping gives what ``locust.stats.bucket_response_time`` gives bucket by bucket."""
    rng = random.Random(3)
    hist = Histogram()
    hist.record_many([int(rng.lognormvariate(10, 2.5)) for _ in range(50_000)] + [1, 99_499, 99_500, 100_500])
    expected: dict[int, int] = {}
    for top_us, n in hist.buckets():
        key = bucket_response_time(top_us / 1000)
        expected[key] = expected.get(key, 0) + n
    assert dict(locust_buckets(hist)) == expected

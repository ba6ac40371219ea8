"""A realistic result dict built from real Histogram objects, for tests that need no load run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.core.histogram import Histogram
from bench.harness import envinfo
from bench.results import run as results


def _histogram(rng: random.Random, median_us: float, n: int) -> Histogram:
    hist = Histogram()
    hist.record_many([int(rng.lognormvariate(0, 0.6) * median_us) for _ in range(n)])
    return hist


def fragment(seed: int = 7, *, scale: float = 1.0, storm: bool = True) -> dict[str, Any]:
    """What a scenario writes to BENCH_METRICS_OUT, with plausible numbers."""
    rng = random.Random(seed)
    hists = {
        "connect": _histogram(rng, 2_000 * scale, 400),
        "subscribe": _histogram(rng, 900 * scale, 400),
        "publish_rtt": _histogram(rng, 1_500 * scale, 3_000),
        "fanout": _histogram(rng, 3_000 * scale, 30_000),
        "fanout_uncorrected": _histogram(rng, 2_500 * scale, 30_000),
        "fanout_last_receiver": _histogram(rng, 6_000 * scale, 3_000),
    }
    timeseries = [
        {
            "t": t,
            "users": min(400, 40 * t),
            "connections": min(400, 40 * t),
            "published_per_s": 100.0 if t > 10 else 10.0 * t,
            "delivered_per_s": 1000.0 / scale if t > 10 else 100.0 * t,
            "errors": 1 if t == 20 else 0,
            "fanout_p50_ms": 3.0 * scale + rng.random(),
            "fanout_p99_ms": 9.0 * scale + 3 * rng.random(),
            "cpu_percent": 40 + 10 * rng.random(),
        }
        for t in range(1, 31)
    ]
    return {
        "scenario": "publish",
        "params": {"channels": 10, "subscribers": 40, "publishers": 10, "rate": 10},
        "latency_ms": {name: h.summary_ms() for name, h in hists.items()},
        "histograms": {name: h.encode() for name, h in hists.items()},
        "throughput": {
            "published": 3000,
            "delivered": 30000,
            "expected_deliveries": 30000,
            "lost": 0,
            "duplicated": 0,
            "reordered": 0,
            "published_per_s": 100.0,
            "delivered_per_s": 1000.0 / scale,
        },
        "connections": {"peak": 400, "opened": 400, "failed": 0},
        "errors": {"timeout": 1},
        "storm": {
            "users": 400,
            "back_50_s": 1.2,
            "back_95_s": 2.5,
            "back_100_s": 3.1,
            "attempts_per_user": 1.4,
            "peak_attempts_per_s": 310,
            "gave_up": 0,
            "missed_recovered": 12,
            "recovery_curve": [[0.0, 0.0], [1.0, 0.3], [1.2, 0.5], [2.0, 0.8], [2.5, 0.95], [3.1, 1.0]],
        }
        if storm
        else None,
        "history": None,
        "loadgen": {"processes": [{"pid": 1, "cpu_percent_max": 52.0}], "cpu_percent_max": 52.0, "saturated": False},
        "timeseries": timeseries,
        "clock": {"offset_ms": 0.0},
    }


def sample_result(seed: int = 7, **kwargs: Any) -> dict[str, Any]:
    started = datetime(2026, 1, 27, 15, 0, 0, tzinfo=UTC)
    return results.assemble(
        run_id=f"sample-{seed}",
        scenario="publish",
        target={"kind": "bundled", "label": "default", "url": "http://127.0.0.1:1", "config": {"fanout": "batched"}},
        load={"users": 400, "spawn_rate": 100, "duration_s": 30, "processes": 1, "params": {}},
        started_at=started,
        finished_at=started + timedelta(seconds=31),
        fragment=fragment(seed, **kwargs),
        environment=envinfo.collect(),
        failure=None,
    )

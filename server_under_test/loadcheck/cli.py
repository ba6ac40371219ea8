"""Command line of the side-by-side benchmark."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import psutil

from bench.core.exceptions import BenchError
from bench.core.schema import SATURATION_PERCENT
from server_under_test.backends import loop_factory
from server_under_test.config import load_config
from server_under_test.loadcheck.run import Figures, Load, measure
from server_under_test.process import ServerProcess


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server_under_test.loadcheck",
        description="Offer the same load to several presets of the bundled server and compare them.",
    )
    defaults = Load()
    parser.add_argument("--presets", nargs="+", default=["naive", "default"], help="presets, the first is the base")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="a config override applied to every preset",
    )
    parser.add_argument("--channels", type=int, default=defaults.channels)
    parser.add_argument("--subscribers", type=int, default=defaults.subscribers, help="per channel")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="published messages/s, all channels")
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="measured seconds per preset")
    parser.add_argument("--warmup", type=float, default=defaults.warmup_s)
    parser.add_argument("--drain", type=float, default=defaults.drain_s, help="max seconds to wait for stragglers")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def run_preset(preset: str, overrides: list[str], load: Load) -> Figures:
    """Start the preset on a free port, measure it, stop it."""
    config = load_config(preset, overrides)
    sets = [*overrides, "rate_limit_per_s=0", f"write_buffer_bytes={max(config.write_buffer_bytes, 8 << 20)}"]
    with ServerProcess(preset, sets) as server:
        process = psutil.Process(server.pid)

        def server_cpu() -> float:
            times = process.cpu_times()
            return float(times.user + times.system)

        _, factory = loop_factory("auto")
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(measure(server.url, config, load, preset, server_cpu))


def _table(rows: list[dict[str, Any]], load: Load) -> str:
    base = rows[0]["delivered_per_s"] or 1.0
    lines = [
        f"offered: {load.rate:g} msg/s into {load.channels} channels x {load.subscribers} subscribers "
        f"= {load.offered_deliveries_per_s:,.0f} deliveries/s for {load.duration_s:g}s",
        f"{'preset':<12}{'delivered/s':>13}{'ratio':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}"
        f"{'missing':>9}{'frames':>10}{'srv cpu':>9}{'µs/dlv':>8}{'gen cpu':>9}",
    ]
    for row in rows:
        lines.append(
            f"{row['preset']:<12}{row['delivered_per_s']:>13,.0f}{row['delivered_per_s'] / base:>7.2f}x"
            f"{_ms(row['p50_ms'])}{_ms(row['p99_ms'])}{_ms(row['max_ms'])}{row['missing']:>9}{row['frames']:>10}"
            f"{row['server_cpu'] or 0:>9.2f}{row['server_us_per_delivery'] or 0:>8.2f}{row['client_cpu']:>9.2f}"
        )
    if len(rows) > 1 and rows[0]["p99_ms"] and rows[-1]["p99_ms"]:
        lines.append(
            f"p99 fan-out latency ratio {rows[0]['preset']}/{rows[-1]['preset']}: "
            f"{rows[0]['p99_ms'] / rows[-1]['p99_ms']:.1f}x"
        )
    lines.append(
        "missing = deliveries not received by the end of the drain; cpu = share of one core;"
        " µs/dlv = server CPU per delivered message (lower = more capacity)"
    )
    if any(row["client_cpu"] * 100 > SATURATION_PERCENT for row in rows):
        lines.append("warning: the load generator used > 90% of a core; its figures bound the server's from below")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return f"{value:>10.1f}" if value is not None else f"{'-':>10}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    load = Load(
        channels=args.channels,
        subscribers=args.subscribers,
        rate=args.rate,
        duration_s=args.duration,
        warmup_s=args.warmup,
        drain_s=args.drain,
    )
    rows: list[dict[str, Any]] = []
    try:
        for preset in args.presets:
            rows.append(run_preset(preset, args.overrides, load).summary())
            if not args.json:
                print(f"measured {preset}", file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=2) if args.json else _table(rows, load))
    return 0

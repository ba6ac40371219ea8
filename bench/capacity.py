"""``bench capacity``: raise the offered load step by step until the SLO or zero loss breaks.

This is the websocket-shootout method: at each step run the scenario for a short while and check the
objectives; the capacity of a config is the highest step that held, and the delivered messages per
second measured there. After the first step that breaks, ``--refine`` bisects between the last step
that held and it. Every step is a normal run (result.json + report.html) in the capacity directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from bench import figures, runner
from bench import result as results
from bench import slo as slos
from bench.core.exceptions import UsageError
from bench.htmlkit import badge, figure, fmt, h, kv_table, page, table, text
from bench.loadgen import USERS_FROM_PARAMS, LoadSpec, users_for

CAPACITY_FILE: Final = "capacity.html"
ZERO_LOSS: Final = "lost==0"
DEFAULT_SERVERS: Final = ("default",)
DEFAULT_STEP_DURATION_S: Final = 15.0
DESCRIPTION: Final = """\
Raise the offered load step by step until an --slo or zero loss breaks; report the highest load
that held for each --server config (the websocket-shootout method).

  bench capacity publish --slo 'fanout.p99<50ms' --server naive --server default
  bench capacity publish --step-param rate --start 5 --factor 2 --max-steps 6

Each step runs --duration seconds (default 15). "users" steps Locust's user count; any other name
steps that scenario parameter (--param NAME=VALUE). A step where the load generator saturated does
not count as held: the limit measured must be the server's."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("steps")
    group.add_argument(
        "--step-param",
        default=None,
        metavar="NAME",
        help="what to raise: 'users' or a scenario parameter such as 'rate' "
        "(default: rate for publish and reconnect_storm, users otherwise)",
    )
    group.add_argument("--start", type=float, default=None, help="first value (default: the scenario's)")
    group.add_argument("--factor", type=float, default=2.0, help="multiply the value by this per step (default 2)")
    group.add_argument("--max-steps", type=int, default=6, help="give up raising after this many steps (default 6)")
    group.add_argument(
        "--refine",
        type=int,
        default=1,
        help="bisection steps between the last that held and the first that broke (default 1)",
    )
    group.add_argument(
        "--confirm",
        type=int,
        default=0,
        metavar="N",
        help="run a step that broke up to N more times; it holds if any try held (a shared machine's "
        "one noisy second should not end the search; default 0)",
    )
    group.add_argument("--allow-loss", action="store_true", help="do not require lost==0")


@dataclass(slots=True)
class Step:
    value: float
    run_dir: Path
    result: dict[str, Any]

    @property
    def held(self) -> bool:
        """The run went fine, every objective held, and the load generator was not the limit."""
        return (
            self.result.get("status") == "ok"
            and (self.result.get("slo") or {}).get("passed") is not False
            and not self.saturated
        )

    @property
    def saturated(self) -> bool:
        """Whether the load generator ran out of CPU while offering the load (see result.judge_loadgen)."""
        return bool((self.result.get("loadgen") or {}).get("saturated"))

    @property
    def why(self) -> str:
        if self.result.get("status") != "ok":
            return f"run failed: {self.result.get('failure')}"
        if self.saturated:
            return "load generator saturated (raise --processes)"
        broken = [v["expr"] for v in (self.result.get("slo") or {}).get("verdicts", []) if not v["passed"]]
        return ", ".join(broken)


@dataclass(slots=True)
class Search:
    """The steps of one config, in the order they ran."""

    label: str
    steps: list[Step] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C during a step: the search stopped there

    @property
    def best(self) -> Step | None:
        held = [s for s in self.steps if s.held]
        return max(held, key=lambda s: s.value) if held else None

    @property
    def first_broken(self) -> Step | None:
        broken = [s for s in self.steps if not s.held and s.result.get("failure_kind") != runner.INTERRUPTED]
        return min(broken, key=lambda s: s.value) if broken else None


def _with_value(request: runner.RunRequest, param: str, value: float) -> runner.RunRequest:
    load = request.load
    if param == "users":
        users = max(1, round(value))
        new_load = replace(load, users=users, spawn_rate=max(load.spawn_rate, users / 5))
    else:
        params = {**load.params, param.replace("-", "_"): f"{value:g}"}
        users = users_for(load.scenario, params) or load.users
        new_load = replace(load, params=params, users=users, spawn_rate=max(load.spawn_rate, users / 5))
    return replace(request, load=new_load)


def default_step_param(scenario: str) -> str:
    """Fan-out scenarios size their users from parameters: raise the message rate; others: users."""
    return "rate" if scenario in USERS_FROM_PARAMS else "users"


def _start_value(load: LoadSpec, param: str, start: float | None) -> float:
    if param == "users" and load.scenario in USERS_FROM_PARAMS:
        raise UsageError(f"{load.scenario} sizes its users from its parameters; step one, e.g. --step-param rate")
    if start is not None:
        return start
    if param == "users":
        return float(load.users)
    key = param.replace("-", "_")
    if key not in load.params:
        raise UsageError(f"--step-param {param}: give --start, or --param {param}=VALUE as the first value")
    try:
        return float(load.params[key])
    except ValueError:
        raise UsageError(f"--step-param {param}: {load.params[key]!r} is not a number") from None


def _normalize(param: str, value: float) -> float:
    return float(max(1, round(value))) if param == "users" else value


def search(request: runner.RunRequest, args: argparse.Namespace, console: Console, label: str) -> Search:
    """Raise until a step breaks (or ``--max-steps``), then bisect ``--refine`` times."""
    found = Search(label)
    param = args.step_param

    def attempt(value: float) -> Step:
        req = _with_value(request, param, value)
        console.print(f"[bold]{label}[/]: {param} = {value:g}", highlight=False)
        result, run_dir = runner.execute(req, console)
        done = Step(value, run_dir, result)
        verdict = "[green]held[/]" if done.held else f"[red]broke[/] ({done.why})"
        console.print(
            f"  {verdict} · delivered/s {fmt(_delivered(result))} · fan-out p99 "
            f"{fmt(slos.lookup(result, 'fanout.p99'))} ms",
            highlight=False,
        )
        return done

    def step(value: float) -> Step:
        """One step, tried again up to ``--confirm`` times while it breaks; the try that counts is kept."""
        done = attempt(value)
        for _ in range(getattr(args, "confirm", 0)):
            if done.held or done.result.get("status") != "ok":
                break
            done = attempt(value)
        found.steps.append(done)
        if done.result.get("failure_kind") == runner.INTERRUPTED:  # Ctrl-C ended that run: end the search too
            found.interrupted = True
            raise KeyboardInterrupt
        return done

    try:
        value = _start_value(request.load, param, args.start)
        for _ in range(args.max_steps):
            if not step(value).held:
                break
            value = _normalize(param, value * args.factor)
        low, high = found.best, found.first_broken
        for _ in range(args.refine if low and high else 0):
            assert low is not None and high is not None
            middle = _normalize(param, (low.value + high.value) / 2)
            if middle in (low.value, high.value):
                break
            tried = step(middle)
            low, high = (tried, high) if tried.held else (low, tried)
    except KeyboardInterrupt:
        found.interrupted = True
    return found


def _delivered(result: dict[str, Any]) -> float | None:
    return slos.lookup(result, "delivered_per_s")


def summary_rows(searches: list[Search], param: str) -> list[dict[str, Any]]:
    rows = []
    for found in searches:
        best, broken = found.best, found.first_broken
        rows.append(
            {
                "config": found.label,
                "param": param,
                "highest_held": best.value if best else None,
                "delivered_per_s": _delivered(best.result) if best else None,
                "fanout_p99_ms": slos.lookup(best.result, "fanout.p99") if best else None,
                "first_broken": broken.value if broken else None,
                "broke_on": broken.why
                if broken
                else "interrupted before a step broke"
                if found.interrupted
                else "never broke within --max-steps",
                "steps": [
                    {
                        "value": s.value,
                        "held": s.held,
                        "run": str(s.run_dir),
                        "delivered_per_s": _delivered(s.result),
                        "fanout_p99_ms": slos.lookup(s.result, "fanout.p99"),
                        "lost": slos.lookup(s.result, "lost"),
                    }
                    for s in sorted(found.steps, key=lambda s: s.value)
                ],
            }
        )
    return rows


def console_table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="capacity: the highest load that held", title_justify="left")
    for col in (
        "config",
        f"highest {rows[0]['param'] if rows else ''}",
        "delivered/s there",
        "fan-out p99 (ms)",
        "first broken at",
        "broke on",
    ):
        out.add_column(col, justify="left" if col in ("config", "broke on") else "right")
    for row in rows:
        out.add_row(
            row["config"],
            fmt(row["highest_held"]),
            fmt(row["delivered_per_s"]),
            fmt(row["fanout_p99_ms"]),
            fmt(row["first_broken"]),
            row["broke_on"],
        )
    return out


def render_html(rows: list[dict[str, Any]], scenario: str, objectives: list[str], out_dir: Path) -> str:
    import os

    param = rows[0]["param"] if rows else "load"
    headline = table(
        ("config", f"highest {param} held", "delivered/s there", "fan-out p99 (ms)", "first broken at", "broke on"),
        [
            (
                r["config"],
                fmt(r["highest_held"]),
                fmt(r["delivered_per_s"]),
                fmt(r["fanout_p99_ms"]),
                fmt(r["first_broken"]),
                r["broke_on"],
            )
            for r in rows
        ],
        left_columns=(5,),
    )
    parts = [
        text("h1", f"Capacity: {scenario}"),
        text("p", "Objectives at every step: " + ", ".join(objectives), "sub"),
        headline,
    ]
    curves = {r["config"]: [(s["value"], s["delivered_per_s"] or 0.0, s["held"]) for s in r["steps"]] for r in rows}
    p99 = {r["config"]: [(s["value"], s["fanout_p99_ms"] or 0.0, s["held"]) for s in r["steps"]] for r in rows}
    parts.append(
        h(
            "div",
            figure(figures.step_curve("delivered / s", curves, param, "messages / s"), "Throughput per step")
            + figure(figures.step_curve("fan-out p99", p99, param, "ms"), "Fan-out p99 per step"),
            "grid2",
        )
    )
    for row in rows:
        step_rows = []
        for s in row["steps"]:
            link = os.path.relpath(Path(s["run"]).resolve() / results.REPORT_FILE, out_dir.resolve())
            step_rows.append(
                (
                    fmt(s["value"]),
                    badge("held", "ok") if s["held"] else badge("broke", "bad"),
                    fmt(s["delivered_per_s"]),
                    fmt(s["fanout_p99_ms"]),
                    fmt(s["lost"]),
                    f'<a href="{link}">report</a>',
                )
            )
        parts.append(text("h2", row["config"]))
        parts.append(
            table((param, "verdict", "delivered/s", "fan-out p99 (ms)", "lost", "run"), step_rows, raw_columns=(1, 5))
        )
    parts.append(h("h2", "Method") + kv_table([("step parameter", param), ("objectives", ", ".join(objectives))]))
    return page(f"bench capacity: {scenario}", parts)


def command(args: argparse.Namespace, console: Console) -> int:
    from bench.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_SLO_FAILED, config_requests

    if args.max_steps < 1 or args.factor <= 1 or args.refine < 0 or args.confirm < 0:
        raise UsageError("--max-steps must be >= 1, --factor > 1, --refine >= 0 and --confirm >= 0")
    if not args.allow_loss and ZERO_LOSS not in [s.replace(" ", "") for s in args.slo]:
        args.slo = [*args.slo, ZERO_LOSS]
    if args.duration is None:
        args.duration = DEFAULT_STEP_DURATION_S
    requests = config_requests(args, args.scenario, DEFAULT_SERVERS)
    args.step_param = args.step_param or default_step_param(requests[0].load.scenario)
    for request in requests:
        _start_value(request.load, args.step_param, args.start)  # a bad --step-param fails before any run
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir = args.out / f"capacity-{stamp}-{requests[0].load.scenario}"
    searches = []
    for request in requests:
        request.out_dir = out_dir / results.safe_name(request.name)
        searches.append(search(request, args, console, request.name))
        if searches[-1].interrupted:
            break  # the configs not searched yet are left out; what ran is written
    rows = summary_rows(searches, args.step_param)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "capacity.json").write_text(
        json.dumps(
            {
                "schema_version": results.SCHEMA_VERSION,
                "kind": "capacity",
                "scenario": requests[0].load.scenario,
                "objectives": args.slo,
                "configs": rows,
            },
            indent=1,
        )
        + "\n"
    )
    path = out_dir / CAPACITY_FILE
    path.write_text(render_html(rows, requests[0].load.scenario, args.slo, out_dir))
    console.print(console_table(rows))
    console.print(f"capacity: {path}", highlight=False, soft_wrap=True)
    if any(found.interrupted for found in searches):
        print("bench capacity: interrupted; the steps that ran are in the table", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if all(row["highest_held"] is not None for row in rows) else EXIT_SLO_FAILED

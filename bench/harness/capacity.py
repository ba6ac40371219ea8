"""``bench capacity``: raise the offered load step by step until the SLO or zero loss breaks.

This is the websocket-shootout method: at each step run the scenario for a short while and check the
objectives; the capacity of a config is the highest step that held, and the delivered messages per
second measured there. After the first step that breaks, ``--refine`` bisects between the last step
that held and it. Every step is a normal run (result.json + report.html) in the capacity directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from bench.core.exceptions import UsageError
from bench.harness import runner
from bench.harness.locust import USERS_FROM_PARAMS, LoadSpec, users_for
from bench.report import capacity as report
from bench.report.htmlkit import fmt
from bench.results import run as results
from bench.results import slo as slos

CAPACITY_FILE: Final = "capacity.html"
CAPACITY_JSON: Final = "capacity.json"
ZERO_LOSS: Final = "lost==0"
DEFAULT_SERVERS: Final = ("default",)
DEFAULT_STEP_DURATION_S: Final = 15.0


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


def start_value(load: LoadSpec, param: str, start: float | None) -> float:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """How to step: what to raise, from where, by what factor, how often, and how to settle the edge."""

    step_param: str
    start: float | None = None
    factor: float = 2.0
    max_steps: int = 6
    refine: int = 1
    confirm: int = 0  # tries again of a step that broke; it holds if any try held

    def check(self) -> None:
        if self.max_steps < 1 or self.factor <= 1 or self.refine < 0 or self.confirm < 0:
            raise UsageError("--max-steps must be >= 1, --factor > 1, --refine >= 0 and --confirm >= 0")


def search(request: runner.RunRequest, plan: Plan, console: Console, label: str) -> Search:
    """Raise until a step breaks (or ``max_steps``), then bisect ``refine`` times. When the very first
    step breaks, lower instead (divide by the factor, same step budget) until one holds, so that a
    config weaker than the start still gets a figure."""
    found = Search(label)
    param = plan.step_param

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
        for _ in range(plan.confirm):
            if done.held or done.result.get("status") != "ok":
                break
            done = attempt(value)
        found.steps.append(done)
        if done.result.get("failure_kind") == runner.INTERRUPTED:  # Ctrl-C ended that run: end the search too
            found.interrupted = True
            raise KeyboardInterrupt
        return done

    try:
        value = start_value(request.load, param, plan.start)
        first = step(value)
        if first.held:
            for _ in range(plan.max_steps - 1):
                value = _normalize(param, value * plan.factor)
                if not step(value).held:
                    break
        elif first.result.get("status") == "ok":  # broke at the start (not a failed run): lower until one holds
            for _ in range(plan.max_steps - 1):
                lower = _normalize(param, value / plan.factor)
                if lower == value:
                    break
                value = lower
                done = step(value)
                if done.held or done.result.get("status") != "ok":
                    break
        low, high = found.best, found.first_broken
        for _ in range(plan.refine if low and high else 0):
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
                "loadgen_bound": bool(broken and broken.saturated),  # the server's capacity is at least this
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


def run(
    requests: list[runner.RunRequest], plan: Plan, objectives: list[str], out_dir: Path, console: Console
) -> tuple[list[dict[str, Any]], Path, bool]:
    """Search every config in turn; writes capacity.json and capacity.html. (rows, html path, interrupted)."""
    plan.check()
    for request in requests:
        start_value(request.load, plan.step_param, plan.start)  # a bad --step-param fails before any run
    searches = []
    for request in requests:
        request.out_dir = out_dir / results.safe_name(request.name)
        searches.append(search(request, plan, console, request.name))
        if searches[-1].interrupted:
            break  # the configs not searched yet are left out; what ran is written
    rows = summary_rows(searches, plan.step_param)
    out_dir.mkdir(parents=True, exist_ok=True)
    scenario = requests[0].load.scenario
    document = {"schema_version": results.SCHEMA_VERSION, "kind": "capacity", "scenario": scenario,
                "objectives": objectives, "configs": rows}  # fmt: skip
    (out_dir / CAPACITY_JSON).write_text(json.dumps(document, indent=1) + "\n")
    path = out_dir / CAPACITY_FILE
    path.write_text(report.render_html(rows, scenario, objectives, out_dir))
    console.print(report.console_table(rows))
    console.print(f"capacity: {path}", highlight=False, soft_wrap=True)
    return rows, path, any(found.interrupted for found in searches)

"""Capacity step verdicts and the storm restart schedule, from results alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness.capacity import Search, Step, summary_rows
from bench.harness.locust import LoadSpec
from bench.harness.runner import storm_restart_at
from bench.results import run as results
from bench.results import slo
from tests.utils.sample import sample_result


def _step(cpu: list[float], *, slos: tuple[str, ...] = ("lost==0",)) -> Step:
    result = sample_result()
    result["timeseries"] = [{"t": i, "cpu_percent": c} for i, c in enumerate(cpu)]
    result["loadgen"] = results.judge_loadgen(result["loadgen"], result["timeseries"], result["params"])
    result["slo"] = slo.evaluate(slo.parse_slos(list(slos)), result)
    return Step(1.0, Path("/run"), result)


def test_the_stop_second_spike_is_not_saturation() -> None:
    step = _step([20, 31, 30, 97])
    assert not step.saturated and step.held


def test_saturation_under_load_breaks_the_step() -> None:
    step = _step([20, 95, 30, 40])
    assert step.saturated and not step.held
    assert "load generator saturated" in step.why


def test_a_failed_objective_breaks_the_step() -> None:
    step = _step([20, 30, 30], slos=("delivered_per_s>1M",))
    assert not step.held and step.why == "delivered_per_s>1M"


def test_a_step_cut_by_ctrl_c_did_not_break() -> None:
    """Ctrl-C during a step ends the search; that step is not the config's limit."""
    held = Step(20.0, Path("/run/20"), _step([20, 30]).result)
    interrupted = {"status": "failed", "failure_kind": "interrupted", "failure": "interrupted by the user"}
    cut = Step(40.0, Path("/run/40"), {**_step([20, 30]).result, **interrupted})
    found = Search("default", [held, cut], interrupted=True)
    assert found.best is held and found.first_broken is None
    [row] = summary_rows([found], "users")
    assert row["highest_held"] == 20.0 and row["first_broken"] is None
    assert row["broke_on"] == "interrupted before a step broke"


@pytest.mark.parametrize(
    ("params", "expected"),
    [({}, None), ({"storm_mode": "drop"}, None), ({"storm_mode": "restart"}, 10.0),
     ({"storm_mode": "restart", "storm_at": "3.5"}, 3.5)],
)  # fmt: skip
def test_storm_restart_schedule(params: dict[str, str], expected: float | None) -> None:
    assert storm_restart_at(LoadSpec("reconnect_storm", 5, 5, 10, params=params)) == expected

"""The comparison table from results alone: ratios, directions and significance."""

from __future__ import annotations

from pathlib import Path

from bench.report import comparison as render
from bench.results import comparison as compare
from bench.results import run as results
from tests.utils.sample import sample_result


def _group(label: str, scale: float, seeds: range) -> compare.Group:
    runs = [sample_result(seed, scale=scale) for seed in seeds]
    for run in runs:
        run["target"]["label"] = label
    return compare.Group(label, runs, [Path(f"/runs/{label}/{seed}/result.json") for seed in seeds])


def _rows(groups: list[compare.Group]) -> dict[str, dict]:
    return {row["metric"]: row for row in compare.compare_groups(groups)}


def test_a_real_difference_is_significant_and_has_a_direction() -> None:
    rows = _rows([_group("slow", 2.0, range(3)), _group("fast", 1.0, range(10, 13))])
    fanout = rows["fanout.p99"]["vs_base"][0]
    assert fanout["significant"] is True and fanout["direction"] == "better"
    assert 0.4 < fanout["ratio"] < 0.6
    delivered = rows["delivered_per_s"]["vs_base"][0]
    assert delivered["ratio"] == 2.0 and delivered["direction"] == "better"
    assert rows["lost"]["vs_base"][0]["direction"] == "same"


def test_noise_is_not_significant() -> None:
    rows = _rows([_group("a", 1.0, range(3)), _group("b", 1.0, range(20, 23))])
    cell = rows["fanout.p99"]["vs_base"][0]
    assert cell["significant"] is False
    assert render.verdict_text(cell).startswith("not significant")


def test_single_runs_cannot_be_judged() -> None:
    rows = _rows([_group("a", 2.0, range(1)), _group("b", 1.0, range(5, 6))])
    cell = rows["fanout.p99"]["vs_base"][0]
    assert cell["significant"] is None and "need --repeat" in render.verdict_text(cell)


def test_failed_runs_are_left_out_of_the_statistics() -> None:
    slow = _group("slow", 2.0, range(3))
    slow.results[0]["status"] = "failed"
    rows = _rows([slow, _group("fast", 1.0, range(10, 13))])
    assert rows["delivered_per_s"]["groups"][0]["n"] == 2


def test_comparison_html_and_json(tmp_path: Path) -> None:
    groups = [_group("naive", 2.0, range(2)), _group("default", 1.0, range(5, 7))]
    rows = compare.compare_groups(groups)
    path = render.write_outputs(groups, rows, tmp_path)
    html = path.read_text()
    assert "Comparison: publish" in html and "default / naive" in html and "fanout.p99" in html
    assert (tmp_path / "comparison.json").is_file()


def test_load_group_from_a_directory_of_runs(tmp_path: Path) -> None:
    for seed in range(3):
        results.write(sample_result(seed), tmp_path / "default" / f"run-{seed}")
    group = compare.load_group(tmp_path / "default")
    assert group.label == "default" and len(group.results) == 3
    single = compare.load_group(tmp_path / "default" / "run-0")
    assert len(single.results) == 1


def test_load_generator_cpu_is_compared_under_load() -> None:
    """The figure the run summary and report show, not the whole-run max with the stop-second spike."""
    groups = [_group("a", 1.0, range(2)), _group("b", 1.0, range(2, 4))]
    for run in groups[0].results + groups[1].results:
        run["loadgen"].update(cpu_percent_max=95.0, cpu_percent_max_under_load=40.0)
    assert _rows(groups)["loadgen.cpu_percent_max_under_load"]["groups"][0]["mean"] == 40.0


def test_unlike_loads_are_named() -> None:
    """Repeats of one load compare cleanly; a different duration or parameter is called out."""
    groups = [_group("a", 1.0, range(2)), _group("b", 1.0, range(2, 4))]
    assert compare.load_differences(groups) == []
    groups[1].results[0]["load"]["duration_s"] = 99.0
    groups[1].results[1]["load"]["params"] = {"rate": "50"}
    differences = compare.load_differences(groups)
    assert any(d.startswith("duration_s: ") and "99.0" in d for d in differences), differences
    assert any(d.startswith("param rate: ") and "50" in d for d in differences), differences

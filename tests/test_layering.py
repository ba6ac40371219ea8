"""The architecture's rules, read from the imports of every module (imports inside functions included).

bench.core          imports nothing else of the project
server_under_test   of bench, imports bench.core only
bench.cli           imported by nothing outside bench.cli
scenarios           imported by no package (locustfiles only)
no import cycle between modules
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.utils import REPO

PACKAGES = ("bench", "server_under_test", "scenarios")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imports_of(name: str, path: Path) -> Iterator[str]:
    """Every project module ``name`` imports, at any depth of its code, resolved to a module we have."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: set(imports_of(name, path)) for name, path in MODULES.items()}


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_graph_is_read() -> None:
    assert "bench.core.protocol" in GRAPH["server_under_test.app"]
    assert "bench.loadgen.runtime" in GRAPH["scenarios.publish"]


def test_core_imports_nothing_else_of_the_project() -> None:
    for name, targets in GRAPH.items():
        if within(name, "bench.core"):
            assert all(within(t, "bench.core") for t in targets), (name, targets)


def test_the_server_imports_only_the_core_of_bench() -> None:
    for name, targets in GRAPH.items():
        if within(name, "server_under_test"):
            bad = [t for t in targets if within(t, "bench") and not within(t, "bench.core") and t != "bench"]
            assert not bad, (name, bad)


def test_nothing_imports_the_cli() -> None:
    for name, targets in GRAPH.items():
        if not within(name, "bench.cli") and name != "bench.__main__":
            assert not [t for t in targets if within(t, "bench.cli")], name


def test_no_package_imports_the_locustfiles() -> None:
    for name, targets in GRAPH.items():
        if not within(name, "scenarios"):
            assert not [t for t in targets if within(t, "scenarios")], name


def test_there_is_no_import_cycle() -> None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(target) :], target]))
            if target not in state:
                visit(target, [*stack, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


LAYERS = {  # each package of bench, and what else of the project it may import
    "bench.core": (),
    "bench.loadgen": ("bench.core",),
    "bench.results": ("bench.core",),
    "bench.report": ("bench.core", "bench.results"),
    "bench.harness": ("bench.core", "bench.results", "bench.report", "server_under_test"),
    "scenarios": ("bench.core", "bench.loadgen"),
}


def test_each_layer_imports_only_the_layers_below_it() -> None:
    for name, targets in GRAPH.items():
        for layer, allowed in LAYERS.items():
            if within(name, layer):
                bad = [t for t in targets if not within(t, layer) and not any(within(t, a) for a in allowed)]
                assert not bad, (name, bad)

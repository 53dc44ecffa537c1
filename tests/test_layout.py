"""The house rules a reviewer would otherwise check by reading imports (README "Layout"):
dependencies point one way, there are no import circles, nothing imports ``cli``, and no module
grows past 500 lines. Read from the source with ``ast``: imports inside functions count too,
because a deferred import is still a dependency."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "worker"
MAX_LINES = 500

#: package → packages it must never import (its own layer and below only).
FORBIDDEN = {
    "worker.batch": ("worker.commands", "worker.actions", "worker.server", "worker.quality", "worker.settings",
                     "worker.cli"),
    "worker.actions": ("worker.commands", "worker.server", "worker.quality", "worker.cli"),
    "worker.server": ("worker.batch", "worker.commands", "worker.settings", "worker.cli"),
    "worker.quality": ("worker.batch", "worker.commands", "worker.server", "worker.settings", "worker.oss"),
    "worker.results": ("worker.batch", "worker.commands", "worker.server", "worker.settings", "worker.oss",
                       "worker.quality"),
    "worker.oss": ("worker.batch", "worker.commands", "worker.actions", "worker.server", "worker.settings",
                   "worker.quality"),
    "worker.settings": ("worker.batch", "worker.commands", "worker.actions", "worker.server", "worker.quality"),
    "worker.video": ("worker.batch", "worker.commands", "worker.actions", "worker.server", "worker.settings",
                     "worker.cli"),
    # the report's steps are pure over columns; the command (worker.commands.report) wires them
    "worker.report": ("worker.commands", "worker.server", "worker.quality", "worker.settings", "worker.cli"),
    "worker.errors": ("worker.",),
    "worker.units": ("worker.",),
    "worker.observability": ("worker.batch", "worker.commands", "worker.server", "worker.settings"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str) -> Iterator[str]:
    """Every worker module ``path`` imports, resolved to its full dotted name."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("worker"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("worker"):
                continue
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target in imported(path, name) if target in known and target != name}
            for name, path in known.items()}


def test_no_import_circles() -> None:
    edges = graph()
    for package_init in [name for name in edges if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()]:
        edges[package_init] = set()  # a package's __init__ re-exporting its modules is not a circle
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                circle = [*stack[stack.index(target):], target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_nothing_imports_the_command_line() -> None:
    importers = sorted(name for name, targets in graph().items() if "worker.cli" in targets)
    assert importers == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    wrong = sorted(f"{name} -> {target}" for name, targets in graph().items()
                   if name == package or name.startswith(package + ".")
                   for target in targets if target.startswith(FORBIDDEN[package]))
    assert wrong == []


def test_no_module_is_over_500_lines() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}

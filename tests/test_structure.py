"""The package's shape: modules stay small, imports form no cycle, and no module reaches
into another module's private names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import cogsync

ROOT = Path(cogsync.__file__).parent
MAX_LINES = 600
# Private by spelling only: the public API of namedtuples and the os/sys escape hatches.
ALLOWED_PRIVATE = {"_asdict", "_exit", "_fields", "_getframe", "_make", "_replace"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def is_module(name: str) -> bool:
    return name in MODULES


def resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    is_package = MODULES[importer].name == "__init__.py"
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def imports(name: str, tree: ast.Module) -> Iterator[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every import anywhere in the module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = resolve(name, node)
            for alias in node.names:
                yield source, alias.name, node.lineno


def import_graph(sources: dict[str, ast.Module]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in sources}
    for name, tree in sources.items():
        for module, imported, _line in imports(name, tree):
            if module.split(".")[0] != "cogsync":
                continue
            target = (
                f"{module}.{imported}" if imported and is_module(f"{module}.{imported}") else module
            )
            if target in sources and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def parse_all() -> dict[str, ast.Module]:
    return {
        name: ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, path in MODULES.items()
    }


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in ALLOWED_PRIVATE


def own_private_names(tree: ast.Module) -> set[str]:
    """Private names this module itself defines: functions, classes, attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if is_private(n)}


def private_reaches(name: str, tree: ast.Module) -> list[str]:
    found = []
    for module, imported, line in imports(name, tree):
        if imported is None or not is_private(imported) or module.split(".")[0] != "cogsync":
            continue
        if not is_module(f"{module}.{imported}"):
            found.append(f"{name}:{line} imports {module}.{imported}")
    own = own_private_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not is_private(node.attr):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
            continue
        if node.attr not in own:
            found.append(f"{name}:{node.lineno} reads .{node.attr} of another module's object")
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by responsibility"


def test_no_import_cycles() -> None:
    found = cycles(import_graph(parse_all()))
    assert not found, f"import cycles: {found}"


def test_no_reach_into_private_names() -> None:
    found = [reach for name, tree in parse_all().items() for reach in private_reaches(name, tree)]
    assert not found, "\n".join(found)


def test_the_checks_catch_a_cycle_and_a_private_reach() -> None:
    lazy = ast.parse("def f():\n    from cogsync.b import thing\n")
    eager = ast.parse("import cogsync.a\nfrom cogsync.c import _hidden\nx = other._secret\n")
    graph = {"cogsync.a": set(), "cogsync.b": set()}
    graph["cogsync.a"] = {m for m, _n, _l in imports("cogsync.a", lazy)}
    graph["cogsync.b"] = {m for m, _n, _l in imports("cogsync.b", eager) if m == "cogsync.a"}
    assert cycles(graph) == [["cogsync.a", "cogsync.b"]]
    reaches = private_reaches("cogsync.b", eager)
    assert any("cogsync.c._hidden" in r for r in reaches)
    assert any("._secret" in r for r in reaches)
    assert not private_reaches(
        "cogsync.b", ast.parse("class A:\n    def f(self):\n        return self._x\n")
    )

"""The sync engine stays sans-I/O: its modules import no event loop, database or network code.

Every module of `cogsync.engine` may use only the domain modules (models, exceptions,
limits); the asyncio driver that executes the engine's commands lives outside it
(`cogsync.driver`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cogsync.engine

ENGINE = Path(cogsync.engine.__file__).parent
FORBIDDEN = {
    "aiohttp",
    "asyncio",
    "boto3",
    "botocore",
    "concurrent",
    "gql",
    "http",
    "requests",
    "socket",
    "sqlite3",
    "sqlite_utils",
    "threading",
    "time",
    "urllib",
    "websockets",
}
EXPECTED = {"__init__.py", "commands.py", "conflicts.py", "flow.py"}
DOMAIN = {"cogsync.engine", "cogsync.exceptions", "cogsync.limits", "cogsync.models"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            names.add(node.module or "")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.add("<dynamic>")
    return names


def engine_modules() -> list[Path]:
    modules = sorted(ENGINE.glob("*.py"))
    assert {p.name for p in modules} >= EXPECTED
    return modules


@pytest.mark.parametrize("path", engine_modules(), ids=lambda p: p.name)
def test_engine_module_imports_no_io(path: Path) -> None:
    imported = imported_modules(path)
    bad = {name for name in imported if name.split(".")[0] in FORBIDDEN | {"<dynamic>"}}
    assert not bad, f"cogsync/engine/{path.name} imports {sorted(bad)}"
    project = {name for name in imported if name.split(".")[0] == "cogsync"}
    outside = {n for n in project if not any(n == a or n.startswith(a + ".") for a in DOMAIN)}
    assert not outside, f"cogsync/engine/{path.name} reaches into {sorted(outside)}"


@pytest.mark.parametrize("path", engine_modules(), ids=lambda p: p.name)
def test_engine_modules_contain_no_coroutines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [
        type(node).__name__
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith)
    ]
    assert not found, f"cogsync/engine/{path.name} contains {found}"


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import os\nfrom asyncio import sleep\nimport sqlite3 as db\n")
    imported = imported_modules(sneaky)
    assert {"asyncio", "sqlite3"} <= imported
    assert not {"asyncio", "sqlite3"} & {n for n in imported if n not in FORBIDDEN}


# The client side: the package itself, its private helper modules, the async core, its
# blocking facade, identity, driver, engine, remote backends and Cognito identity.
PACKAGE = ENGINE.parent
CLIENT_SIDE = (
    "cogsync.blocking",
    "cogsync.client",
    "cogsync.dataset",
    "cogsync.driver",
    "cogsync.exceptions",
    "cogsync.identity",
    "cogsync.push",
    "cogsync.engine",
    "cogsync.remote",
    "cogsync.auth",
)


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def is_client_side(module: str) -> bool:
    if module == "cogsync" or module.startswith("cogsync._"):
        return True
    return any(module == m or module.startswith(m + ".") for m in CLIENT_SIDE)


def project_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The cogsync modules ``path`` imports anywhere (functions and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n for n in submodules if n in modules] or [node.module]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "cogsync" and n in modules)
    return found


def test_client_side_modules_import_no_cycle() -> None:
    modules = module_files()
    graph = {name: project_imports(path, modules) - {name} for name, path in modules.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(graph.get(current, ()))
        return False

    cycles = sorted(
        (a, b)
        for a in graph
        if is_client_side(a) and a != "cogsync"
        for b in graph[a]
        if b != "cogsync" and reaches(b, a)
    )
    assert not cycles, f"import cycles through {cycles}"


@pytest.mark.parametrize(
    "name", [n for n in sorted(module_files()) if is_client_side(n)], ids=lambda n: n
)
def test_client_side_modules_import_no_private_names(name: str) -> None:
    tree = ast.parse(module_files()[name].read_text(encoding="utf-8"))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cogsync")
        for alias in node.names
        if alias.name.startswith("_") and f"{node.module}.{alias.name}" not in module_files()
    ]
    assert not private, f"{name} imports private names {private}"

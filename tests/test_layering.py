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

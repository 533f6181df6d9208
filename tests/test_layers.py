"""The packages of ``app`` import in one direction only (README, Architecture): the HTTP
layer on top, then the use cases, then the queue and workers, then the engine and the
storage, each of which imports nothing above it; the engine imports nothing outside itself
but NumPy. Read from the source (every import statement, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"

# What each package (or top-level module) of app may import from the others.
ALLOWED = {
    "main": {"api", "services", "storage", "config", "process_heap"},
    "api": {"services", "storage", "engine", "config"},
    "cli": {"client", "services", "jobs", "storage", "engine", "config", "process_heap"},
    "client": set(),
    "services": {"jobs", "storage", "engine", "config"},
    "jobs": {"storage", "engine", "config"},
    "storage": {"config"},
    "engine": set(),
    "config": set(),
    "process_heap": set(),  # the gc freeze the process entry points call
    "ui": set(),
}


def imports_between_packages() -> set[tuple[str, str, str]]:
    """(importing package, imported package, file) for every import of another package."""
    found = set()
    for path in APP.rglob("*.py"):
        parts = path.relative_to(APP).parts
        package = parts[0] if len(parts) > 1 else path.stem
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.startswith("app.") and name.split(".")[1] != package:
                    found.add((package, name.split(".")[1], str(path.relative_to(APP))))
    return found


def test_every_package_is_known() -> None:
    packages = {p.name for p in APP.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in APP.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(ALLOWED)


def test_packages_import_only_downwards() -> None:
    wrong = sorted(
        f"{file}: {package} imports {imported}"
        for package, imported, file in imports_between_packages()
        if imported not in ALLOWED.get(package, set())
    )
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_imports_inside_functions() -> None:
    found = imports_between_packages()
    assert ("cli", "jobs", "cli.py") in found  # app/cli.py imports lazily, in its commands

"""The engine stays a pure-NumPy library: no web / database imports, no pickle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "app" / "engine"
FORBIDDEN_TOP_LEVEL = {
    "fastapi",
    "sqlalchemy",
    "pydantic",
    "pydantic_settings",
    "starlette",
    "pickle",
    "cPickle",
    "dill",
    "joblib",
    "shelve",
    "marshal",
}


def engine_modules() -> list[Path]:
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 5
    return files


def imported_names(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append("app.engine." + (node.module or ""))  # relative: inside the package
            else:
                names.append(node.module or "")
    return names


def test_engine_imports_nothing_from_the_web_or_database_layers() -> None:
    for path in engine_modules():
        for name in imported_names(ast.parse(path.read_text(), str(path))):
            top = name.split(".")[0]
            assert top not in FORBIDDEN_TOP_LEVEL, f"{path.name} imports {name}"
            if top == "app":
                assert name == "app.engine" or name.startswith("app.engine."), (
                    f"{path.name} imports {name}"
                )


def test_nothing_unpickles() -> None:
    """No pickle anywhere in the engine, and every np.load says allow_pickle=False."""
    for path in [*engine_modules(), ROOT / "bench" / "train_throughput.py"]:
        if not path.exists():
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, path.name
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("np", "numpy")
            ):
                kwargs = {kw.arg: kw.value for kw in node.keywords}
                value = kwargs.get("allow_pickle")
                assert isinstance(value, ast.Constant) and value.value is False, (
                    f"{path.name}: np.load without allow_pickle=False"
                )
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("loads", "load")
                and isinstance(node.value, ast.Name)
            ):
                assert node.value.id not in ("pickle", "cPickle", "dill", "joblib"), path.name


def test_the_module_map_names_every_engine_module() -> None:
    """app/engine/__init__.py's docstring lists each module as ``name``."""
    import app.engine

    doc = app.engine.__doc__ or ""
    for path in engine_modules():
        if path.stem != "__init__":
            assert f"``{path.stem}``" in doc, f"the module map does not name {path.stem}"

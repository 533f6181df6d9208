"""Fault 9: hostile uploads are refused with a 4xx; no code path can unpickle anything."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.faults.conftest import MakeCluster
from tests.faults.harness import REPO_ROOT
from tests.faults.scenarios import unsafe_files, unsafe_inputs

APP = REPO_ROOT / "app"
# Modules that can execute code while loading data.
UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "shelve",
    "marshal",
}
UNSAFE_CALLS = {"read_pickle", "to_pickle", "loads_pickle"}


def unsafe_uses(path: Path) -> list[str]:
    """Imports of pickling modules, ``allow_pickle`` that is not literally False, and
    pickle-based helpers, in one Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [
                f"{where} import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in UNSAFE_MODULES
            ]
        elif (
            isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES
        ):
            found.append(f"{where} from {node.module} import ...")
        elif isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                found.append(f"{where} allow_pickle={ast.unparse(node.value)}")
        elif isinstance(node, ast.Attribute) and node.attr in UNSAFE_CALLS:
            found.append(f"{where} .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in UNSAFE_MODULES:
            found.append(f"{where} {node.id}")
    return found


def test_no_pickle_anywhere_in_the_code_base() -> None:
    files = sorted(APP.rglob("*.py"))
    assert len(files) > 10  # the scan really looked at the application
    offenders = [use for path in files for use in unsafe_uses(path)]
    assert offenders == []
    # Non-Python files (templates, scripts) must not mention the loaders either.
    for path in APP.rglob("*"):
        if path.is_file() and path.suffix in {".js", ".html", ".toml", ".cfg", ".txt"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            assert "joblib" not in text and "allow_pickle=True" not in text, path


def test_the_scan_catches_what_it_is_for(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import pickle\nfrom joblib import load\nimport numpy as np\n"
        "np.load('f', allow_pickle=True)\nnp.load('f', allow_pickle=flag)\n"
        "np.load('f', allow_pickle=False)\n"
    )
    assert len(unsafe_uses(probe)) == 4, unsafe_uses(probe)


@pytest.mark.slow
def test_hostile_files_are_refused_with_4xx(sqlite_url: str, make_cluster: MakeCluster) -> None:
    cluster = make_cluster(sqlite_url)
    server = cluster.serve()
    report = unsafe_inputs(cluster, cluster.client(), server.base_url)

    assert report.problems() == []
    # Every hostile file went to the dataset upload, and every npz to the model import too.
    npz = sum(name.endswith(".npz") for name, _ in unsafe_files().values())
    assert report.tried == len(unsafe_files()) + npz
    assert all(400 <= status < 500 for status in report.answers.values())

"""The README's "From the terminal" commands, run by bash against a real `backprop serve`."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli.conftest import Running
from tests.worker.procs import REPO_ROOT

pytestmark = pytest.mark.slow  # a real `serve` process, and a training job

SPECIES = ("setosa", "versicolor", "virginica")


def readme_block() -> str:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## From the terminal\s*$(.*?)(?=^## )", readme, re.M | re.S)
    assert section, "README has no '## From the terminal' section"
    (block,) = re.findall(r"```bash\n(.*?)```", section.group(1), re.S)
    return block


def flowers(path: Path, *, rows: int, labelled: bool, seed: int) -> list[str]:
    """Three well separated clusters of 4 features; a ``species`` column when labelled."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 3, size=rows)
    x = rng.normal(scale=0.3, size=(rows, 4)) + kinds[:, None] * 2.0
    header = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    lines = [",".join([*header, "species"] if labelled else header)]
    for row, kind in zip(x, kinds, strict=True):
        cells = [f"{v:.3f}" for v in row] + ([SPECIES[kind]] if labelled else [])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return [SPECIES[kind] for kind in kinds]


def test_readme_terminal_commands_run(client_server: Running, tmp_path: Path) -> None:
    flowers(tmp_path / "iris.csv", rows=150, labelled=True, seed=0)
    species = flowers(tmp_path / "new-flowers.csv", rows=20, labelled=False, seed=1)
    block = readme_block()
    script = block.replace("http://localhost:8000", client_server.url)
    script = re.sub(r"BACKPROP_KEY=bp_\S*", f"BACKPROP_KEY={client_server.key}", script)
    assert client_server.key in script and client_server.url in script
    python = f"{shlex.quote(sys.executable)} -m app.cli"
    script = f'backprop() {{ PYTHONPATH={shlex.quote(str(REPO_ROOT))} {python} "$@"; }}\n' + script
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("BACKPROP_")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "succeeded after" in result.stderr
    rows = list(csv.reader(io.StringIO((tmp_path / "predictions.csv").read_text())))
    assert rows[0] == ["label", "p_setosa", "p_versicolor", "p_virginica"]
    assert len(rows) == 21
    assert sum(row[0] == kind for row, kind in zip(rows[1:], species, strict=True)) >= 18

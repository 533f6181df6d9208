"""The README's curl walkthrough and "Your own data" run, as written, against a real server.

Skipped (with the reason) without bash, curl or jq.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.processes import free_port, stop, wait_healthy
from tests.readme import readme_section


@pytest.mark.slow
def test_readme_walkthrough_runs_against_a_real_server(tmp_path: Path) -> None:
    """The README's curl walkthrough and its "Your own data" section, block by block, as
    one bash script against `backprop serve` on SQLite."""
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the README walkthrough needs {', '.join(missing)} on PATH")
    backprop = Path(sys.executable).with_name("backprop")
    assert backprop.is_file(), "the `backprop` console script is not installed next to python"

    sections = readme_section("Walkthrough: XOR with curl") + readme_section("Your own data")
    blocks = re.findall(r"```bash\n(.*?)```", sections, re.S)
    key = "bp_" + "walkthrough-test-key-0123456789"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    script = "\n".join(blocks).replace("http://localhost:8000", base_url)
    script = re.sub(r"^KEY=bp_\S*", f"KEY={key}", script, flags=re.M)
    assert f"KEY={key}" in script

    env = {
        **os.environ,
        "BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'backprop.db'}",
        "BACKPROP_HOST": "127.0.0.1",
        "BACKPROP_PORT": str(port),
        "BACKPROP_WORKERS": "1",
        "BACKPROP_BOOTSTRAP_KEY": key,
    }
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [str(backprop), "serve"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_healthy(
            base_url, server, logs=lambda: log_path.read_text(errors="replace"), timeout=60
        )
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, f"walkthrough failed:\n{result.stdout}\n{result.stderr}"
        lines = result.stdout.strip().splitlines()
        xor = next(
            json.loads(line, parse_float=str) for line in lines if line.startswith('{"outputs":')
        )
        assert xor["labels"] == [0, 1, 1, 0], result.stdout
        for (token,) in xor["outputs"]:  # float32 outputs as their shortest decimals
            assert float(token) == float(str(np.float32(token))), token
        # Your own data: the CSV's classes, and the labels the flowers classifier predicts.
        assert '"classes":["setosa","versicolor","virginica"]' in result.stdout
        assert '["setosa","versicolor","virginica"]' in lines, result.stdout
        # Evaluate a model: six held-out flowers, the 3x3 confusion matrix, one kept.
        evaluation = next(json.loads(line) for line in lines if '"confusion_matrix"' in line)
        assert evaluation["n_samples"] == 6, result.stdout
        matrix = evaluation["confusion_matrix"]
        assert len(matrix) == 3 and [sum(row) for row in matrix] == [2, 2, 2], result.stdout
        trace = sum(matrix[i][i] for i in range(3))
        assert evaluation["accuracy"] == trace / 6, result.stdout
        assert lines[-1] == "1", result.stdout
    finally:
        stop(server)
        log.close()
    assert server.returncode == 0, log_path.read_text(errors="replace")

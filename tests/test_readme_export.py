"""The README's "Take a model elsewhere" commands, run after its walkthrough against a real
``backprop serve``: the three exports download, onnxruntime and the Python file answer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import free_port, stop, wait_healthy
from tests.readme import readme_section


def _blocks(title: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", readme_section(title), re.S)


@pytest.mark.slow
def test_readme_export_commands_run_after_the_walkthrough(tmp_path: Path) -> None:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the README commands need {', '.join(missing)} on PATH")
    backprop = Path(sys.executable).with_name("backprop")
    assert backprop.is_file(), "the `backprop` console script is not installed next to python"
    exports = _blocks("Take a model elsewhere")
    assert len(exports) == 3
    key = "bp_" + "export-section-test-key-0123"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    script = "\n".join([*_blocks("Walkthrough: XOR with curl"), *exports])
    script = script.replace("http://localhost:8000", base_url)
    script = re.sub(r"^KEY=bp_\S*", f"KEY={key}", script, flags=re.M)
    env = {
        **os.environ,
        # python3 is this environment's (with NumPy and onnxruntime), as after the Quickstart
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "BACKPROP_DATABASE_URL": f"sqlite:///{tmp_path / 'backprop.db'}",
        "BACKPROP_HOST": "127.0.0.1",
        "BACKPROP_PORT": str(port),
        "BACKPROP_WORKERS": "1",
        "BACKPROP_BOOTSTRAP_KEY": key,
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
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
                env=env,
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
        finally:
            stop(server)
    assert result.returncode == 0, f"commands failed:\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.strip().splitlines()
    assert lines[-5] == "[0 1 1 0]", result.stdout  # onnxruntime's labels
    assert [line.split(",")[0] for line in lines[-4:]] == ["0", "1", "1", "0"]  # the .py file
    assert "# Model card: mdl_" in result.stdout  # (after predict's JSON, no newline)
    for name in ("xor.onnx", "xor_model.py", "xor.npz"):
        assert (tmp_path / name).stat().st_size > 0, name

"""Real worker processes for tests: ``python -m app.cli worker`` with the test's env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from app.config import get_settings
from app.engine import npzio
from app.storage.blobs import open_blob_store, read_verified
from app.storage.database import Database
from app.storage.tables import Model

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def start_worker(
    log_path: Path, *, burst: bool = False, crash_at: str | None = None, **env: str
) -> subprocess.Popen[bytes]:
    """A `backprop worker` child; BACKPROP_* come from the test's environment."""
    child_env = {**os.environ, **env}
    child_env.pop("BACKPROP_TEST_CRASH_AT", None)
    if crash_at is not None:
        child_env["BACKPROP_TEST_CRASH_AT"] = crash_at
    args = [sys.executable, "-m", "app.cli", "worker", *(["--burst"] if burst else [])]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args, env=child_env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )


def wait_exit(process: subprocess.Popen[bytes], log_path: Path, timeout: float = 120) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(
            f"worker still running after {timeout} s:\n{log_path.read_text()}"
        ) from None


def model_arrays(db: Database, model_id: str) -> dict[str, np.ndarray]:
    with db.read_session() as session:
        row = session.get(Model, model_id)
        assert row is not None
        return npzio.load(read_verified(open_blob_store(get_settings()), row.weights_sha256))


def same_arrays(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Bit-identical: the same names, each ``np.array_equal``."""
    return a.keys() == b.keys() and all(np.array_equal(a[name], b[name]) for name in a)

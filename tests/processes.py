"""Waiting on conditions and stopping child processes: shared by the process-level tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    *,
    what: str,
    timeout: float = 60,
    interval: float = 0.05,
    error: type[AssertionError] = AssertionError,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that value; raise
    ``error`` naming ``what`` after ``timeout`` seconds (generous: no timing is tested)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30, group: bool = False) -> None:
    """SIGTERM ``process`` and wait for it (SIGKILL after ``timeout`` s); with ``group``,
    then SIGKILL its whole process group, so that no child it started is left behind."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
